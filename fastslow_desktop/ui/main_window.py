"""The main window: search bar, folders sidebar, results grid, preview pane, status bar and errors panel.

It only wires widgets to the controller: every slow thing (models, database, decoding) happens in the
controller's workers and comes back as signals.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import (QFileDialog, QMainWindow, QSplitter, QStackedWidget, QVBoxLayout,
                               QWidget)

from ..media import is_photo
from .announce import announce
from .controller import AppController
from .focus_order import set_window_order
from .menus import build_menus
from .result_actions import ResultActions
from .result_selection import ResultSelection
from .models.results import ResultRoles, ResultsModel
from .settings import AppSettings
from .views.banner import Banner
from .views.errors_panel import ErrorsPanel
from .views.filter_bar import FilterBar
from .views.preview import PreviewPane
from .views.results_view import THUMB, ResultsView
from .views.search_bar import SearchBar
from .views.sidebar import FoldersSidebar
from .views.status_bar import AppStatusBar
from .views.welcome import WelcomePage
from .window_dialogs import WindowDialogs
from .workers.thumbnails import ThumbnailLoader

RESULTS_TOP = 500  # results shown per query (the grid stays smooth far beyond this)


class MainWindow(ResultSelection, ResultActions, WindowDialogs, QMainWindow):
    closed = Signal()  # after close: the services have stopped and the library is saved (the app may quit)

    def __init__(self, controller: AppController, settings: AppSettings, icon: QIcon | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.settings = settings
        self.icon = icon or QIcon()
        self.setWindowTitle("FastSlow")
        if not self.icon.isNull():
            self.setWindowIcon(self.icon)
        self.setAcceptDrops(True)
        self._has_roots: bool | None = None
        self._counts = (0, 0)
        self._query = ""
        self._first_results_shown = False
        self._download_dialog = None  # the consent dialog while it is open
        self._model_chooser = None  # the model chooser while it is open (window_dialogs)
        self._keep_banner = False  # the banner explains why other models were kept: ready leaves it
        self._stopped = False  # the services have stopped: the window may close
        self._build()
        self._connect()
        self._restore()

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        self.search_bar = SearchBar(self)
        self.banner = Banner(self)
        # Decoded for the screen's pixels (2× at 200 % scaling), drawn in the card's logical box: sharp.
        ratio = self.devicePixelRatioF()
        self.thumbnails = ThumbnailLoader(QSize(THUMB, THUMB) * ratio, threads=2, parent=self)
        self.results_model = ResultsModel(self.thumbnails, self, pixel_ratio=ratio)
        self.results_view = ResultsView(self)
        self.results_view.setObjectName("results")
        self.results_view.setModel(self.results_model)
        self.welcome = WelcomePage(self.icon, self)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.results_view)
        self.sidebar = FoldersSidebar(self)
        self.preview = PreviewPane(self)
        self.preview.moments_source = self.results_model.moments_of  # a video's other matching moments
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.pages)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([270, 690, 340])  # the sidebar's three buttons need 270 px
        self.splitter.setChildrenCollapsible(False)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.search_bar)
        layout.addWidget(self.banner)
        self.filter_bar = FilterBar(self, kind=self.search_bar.kind)
        self.filter_bar.install(self, layout)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.status = AppStatusBar(self)
        self.setStatusBar(self.status)
        self.errors_panel = ErrorsPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.errors_panel)
        self.errors_panel.hide()
        build_menus(self)
        set_window_order(self)
        self.resize(1280, 800)

    def _connect(self) -> None:
        c = self.controller
        c.loading.connect(self._on_loading)
        c.ready.connect(self._on_ready)
        c.failed.connect(self._on_failed)
        c.needs_download.connect(self._on_needs_download)
        c.stage1.connect(self._on_stage1)
        c.stage2.connect(self._on_stage2)
        c.refining.connect(self.search_bar.set_refining)
        c.search_failed.connect(self._on_search_failed)
        c.roots_changed.connect(self._on_roots)
        c.status_changed.connect(self._on_status)
        c.index_started.connect(self.status.index_started)
        c.index_progress.connect(self.status.index_progress)
        c.index_finished.connect(self.status.index_finished)
        c.waiting_for_writer.connect(lambda msg: self.status.showMessage(msg, 15_000))
        c.written_elsewhere.connect(self.status.indexed_elsewhere)
        c.written_elsewhere.connect(self.sidebar.indexed_elsewhere)
        c.index_finished.connect(self._refresh_results)
        c.folder_removed.connect(self._run_again)
        c.stopping_changed.connect(self._on_stopping)
        c.index_error.connect(lambda msg: self.banner.show_message(f"Indexing stopped: {msg}", None))
        c.library_error.connect(lambda msg: self.banner.show_message(msg, None))

        self.search_bar.query_changed.connect(self.run_query)
        self.search_bar.field.move_down.connect(self._focus_results)
        self.results_view.selectionModel().currentChanged.connect(self._on_current)
        self.results_view.open_requested.connect(lambda index: self._open(index.data(ResultRoles.Result)))
        self.results_view.preview_requested.connect(self._toggle_preview)
        self.results_view.back_requested.connect(self.focus_search)
        self.results_view.typed.connect(self._type_into_search)
        self.results_model.modelReset.connect(self._on_reset)
        self.sidebar.add_requested.connect(self.choose_folders)
        self.sidebar.remove_requested.connect(self._remove_folder)
        self.sidebar.exclusions_requested.connect(self._edit_exclusions)
        self.welcome.add_requested.connect(self.choose_folders)
        self.welcome.clear_filters_requested.connect(self.filter_bar.clear)
        self.status.pause_toggled.connect(c.pause_indexing)
        self.status.cancel_clicked.connect(c.cancel_indexing)
        self.status.errors_clicked.connect(self._show_errors)
        self.banner.action_clicked.connect(self.open_settings)
        self.add_action.triggered.connect(self.choose_folders)
        self.picture_action.triggered.connect(self.choose_picture)
        self.settings_action.triggered.connect(self.open_settings)
        self.models_action.triggered.connect(lambda: self.open_model_chooser())
        c.reembedding.connect(self._on_reembedding)
        c.kept_models.connect(self._on_kept_models)
        c.models_chosen_elsewhere.connect(self._on_models_chosen_elsewhere)
        self.reindex_action.triggered.connect(lambda: c.index(None))
        self.retry_action.triggered.connect(c.retry_failed)
        self.preview.open_requested.connect(self._open)
        self.preview.reveal_requested.connect(self._reveal)
        self.preview.copy_requested.connect(self._copy_path)
        self.preview.more_like_requested.connect(self.more_like_this)
        self.preview.play_requested.connect(self._play_externally)

    def _restore(self) -> None:
        if self.settings.geometry is not None:
            self.restoreGeometry(self.settings.geometry)
        if self.settings.window_state is not None:
            self.restoreState(self.settings.window_state)
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None and screen.isValid():  # 1280×800, or a size saved on a larger screen, may not fit
            self.resize(min(self.width(), screen.width()), min(self.height(), screen.height()))
        last = self.settings.last_query
        # Only on the library it was typed in: the demo's query must not replace a new library's first run.
        if last and self.settings.last_query_library == str(self.controller.config.library_dir):
            self.search_bar.field.setText(last)
            self.search_bar.field.selectAll()  # typing starts a new query; End keeps the old one
            self._query = last

    # -- start-up and models --------------------------------------------------------------
    def start(self, query: str | None = None) -> None:
        """Ask the controller to load everything; `query` (`fastslow --search TEXT`), else the last
        query, runs as soon as the models are ready."""
        if query:
            self.search_bar.field.setText(query)
            self._query = query
        self.status.set_models("Loading models…")
        self.controller.start()
        if self._query:
            self.run_query(self._query, self.search_bar.kind_filter)

    def _on_stopping(self, stopping: bool) -> None:
        if stopping:
            self.status.set_models("Stopping…")  # the services wind down in the background

    def _on_loading(self, message: str) -> None:
        self.status.set_models(message)

    # -- search ---------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.search_bar.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_bar.field.selectAll()

    def _type_into_search(self, text: str) -> None:
        """Typing in the grid goes on in the search field, after what is there (Ctrl+Z takes it back)."""
        field = self.search_bar.field
        field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        field.deselect()
        field.end(False)
        field.insert(text)
        field.textEdited.emit(field.text())  # a user's edit: the search runs as if typed there

    def _on_search_failed(self, message: str) -> None:
        self.status.showMessage(f"Search failed: {message}", 8000)
        announce(self, f"Search failed: {message}")

    def run_query(self, text: str, kind: str | None = None) -> None:
        self._query = text
        if not text:
            self.controller.cancel_search()
            self._forget_results()
            self.results_model.set_results([])
            self.search_bar.set_timing(None, None)
            self._show_empty_page()
            return
        self.controller.search(text=text, kind=kind, top=RESULTS_TOP, k=self.controller.config.k,
                               **self.filter_bar.request_fields())

    def more_like_this(self, result) -> None:
        self.search_bar.show_like(Path(result.path).name)
        self._query = f"like {Path(result.path).name}"
        self.status.showMessage(f"Showing results like {Path(result.path).name}", 5000)
        self.controller.search(like_segment=result.segment_id, top=RESULTS_TOP, k=self.controller.config.k,
                               kind=self.search_bar.kind_filter, **self.filter_bar.request_fields())

    def search_image(self, path: str) -> None:
        self.search_bar.show_like(Path(path).name)
        self._query = f"like {Path(path).name}"
        self.status.showMessage(f"Showing results like {path}", 5000)
        self.controller.search(image=path, top=RESULTS_TOP, k=self.controller.config.k,
                               kind=self.search_bar.kind_filter, **self.filter_bar.request_fields())

    # -- folders --------------------------------------------------------------------------
    def choose_picture(self) -> None:
        from ..media import IMAGE_EXTENSIONS, RAW_EXTENSIONS

        patterns = " ".join(f"*{e} *{e.upper()}" for e in sorted(IMAGE_EXTENSIONS | RAW_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Search with a picture", str(Path.home()),
                                              f"Pictures ({patterns})")
        if path:
            self.search_image(path)

    def choose_folders(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos and videos", str(Path.home()))
        if folder:
            self.add_folders([folder])

    def add_folders(self, paths: list[str]) -> None:
        """The drop target and the Add button: index these folders."""
        if paths:
            self.settings.welcomed = True
            self.status.showMessage(f"Adding {', '.join(Path(p).name for p in paths)}…", 3000)
            self.controller.add_folders(paths)

    def _on_roots(self, roots: list) -> None:
        self.sidebar.set_roots(roots)
        self._has_roots = bool(roots)
        if self.pages.currentWidget() is self.welcome and not self.results_model.rowCount():
            self._show_empty_page()

    def _on_status(self, status: dict) -> None:
        failures = status.get("failed", [])
        self.errors_panel.set_failures(failures)
        self.status.set_failures(len(failures))
        self._counts = (status.get("images", 0), status.get("videos", 0))
        if not self.controller.indexing:
            self.status.show_summary(status)
        if self.pages.currentWidget() is self.welcome and not self.results_model.rowCount():
            self._show_empty_page()

    def _show_empty_page(self) -> None:
        if not self._has_roots:
            self.welcome.show_first_run()
        elif self._query:
            self.welcome.show_no_results(self._query, self.filter_bar.active())
        else:
            self.welcome.show_hint(*self._counts)
        self.pages.setCurrentWidget(self.welcome)

    def _show_errors(self) -> None:
        self.errors_panel.show()
        self.errors_panel.raise_()

    # -- drag and drop --------------------------------------------------------------------
    @staticmethod
    def _local_paths(urls: list[QUrl]) -> tuple[list[str], list[str]]:
        folders, images = [], []
        for url in urls:
            if not url.isLocalFile():
                continue
            path = Path(url.toLocalFile())
            if path.is_dir():
                folders.append(str(path))
            elif is_photo(path) and path.is_file():
                images.append(str(path))
        return folders, images

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(self._local_paths(event.mimeData().urls())):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Folders are added and indexed; a dropped photo searches for similar ones."""
        folders, images = self._local_paths(event.mimeData().urls())
        if not folders and not images:
            event.ignore()
            return
        event.acceptProposedAction()
        if folders:
            self.add_folders(folders)
        elif images:
            self.search_image(images[0])

    # -- closing --------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Hide at once; the services stop on a background thread, and the window closes when they have."""
        if self._stopped:
            super().closeEvent(event)
            return
        event.ignore()
        if self.controller.stopping and self.isHidden():
            return  # already closing
        self.settings.geometry = self.saveGeometry()
        self.settings.window_state = self.saveState()
        self.settings.last_query = self.search_bar.field.text().strip()
        self.settings.last_query_library = str(self.controller.config.library_dir)
        self.settings.sync()
        # Gone from the screen at once; the workers may need seconds to stop (an import of torch
        # cannot be interrupted), and the user should not watch a frozen window meanwhile.
        self.hide()
        self.preview.shutdown()
        self.thumbnails.clear()
        self.controller.shutdown(on_done=self._closed, also_wait=(self.thumbnails.wait, self.preview.wait))

    def _closed(self) -> None:
        self._stopped = True
        self.close()
        self.closed.emit()
