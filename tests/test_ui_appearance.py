"""How the window looks off the default desktop: small screens, 200 % scaling, odd names, a dark theme."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage

from tests.ui_helpers import open_window

QUERY = "a red circle to the left of a blue square"
ODD = "Me <3 you & <Tom> at the beach.png"


def test_the_window_fits_an_800_pixel_screen(qtbot, ui_settings, indexed_library, tiny_bundle):
    """The 20 pt welcome heading did not wrap and held the window at 957 px or more."""
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    assert window.welcome.heading.wordWrap()
    assert window.minimumSizeHint().width() <= 800  # the welcome page
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        window.run_query(QUERY)
    assert window.minimumSizeHint().width() <= 800  # the results


def test_names_are_shown_as_written_not_read_as_markup(qtbot, ui_settings, indexed_library, tiny_bundle):
    """A file named "Me <3 you & <Tom> at the beach.png" was titled "Me at the beach.png"."""
    from fastslow_desktop.ui.dialogs.exclusions import ExclusionsDialog

    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        window.run_query(QUERY)
    preview = window.preview
    odd = SimpleNamespace(**{**vars(window.results_model.result(0)), "path": f"/photos/Tom & Jerry <2019>/{ODD}"})
    preview.show_result(odd)
    assert preview.title.textFormat() == Qt.TextFormat.PlainText and preview.title.font().bold()
    assert preview.title.text().replace("\u200b", "") == ODD
    assert preview.fields["path"].textFormat() == Qt.TextFormat.PlainText
    window.banner.show_message("Cannot read /photos/Tom & Jerry <2019>\nFastSlow keeps using tiny.", None)
    assert window.banner.label.textFormat() == Qt.TextFormat.PlainText
    dialog = ExclusionsDialog("/photos/Tom & Jerry <2019>", [], window)
    intro = dialog.findChildren(type(preview.title))[0]
    assert "Tom &amp; Jerry &lt;2019&gt;" in intro.text().replace("\u200b", "") and intro.wordWrap()


def test_long_names_wrap_or_shorten_instead_of_being_cut(qtbot, tmp_path):
    from fastslow_desktop.ui.format import breakable
    from fastslow_desktop.ui.views.errors_panel import ErrorsPanel
    from fastslow_desktop.ui.views.filter_bar import FOLDER_CHARS, FilterBar
    from fastslow_desktop.ui.views.sidebar import FoldersSidebar

    assert breakable("/a/b_c.png") == "/\u200ba/\u200bb_\u200bc.\u200bpng"
    bar = FilterBar()
    qtbot.addWidget(bar)
    long = str(tmp_path / "Holiday photos from the summer of 2019 in Brittany")
    bar.set_roots([long])
    shown = bar.folder.itemText(1)
    assert len(shown) == FOLDER_CHARS and shown.startswith("Holiday") and shown.endswith("Brittany") and "…" in shown
    bar.folder.setCurrentIndex(1)
    assert bar.folder.toolTip() == long  # the whole path, where the box has only the start and end
    assert bar.active() == ["in Holiday photos from the summer of 2019 in Brittany"]
    panel, sidebar = ErrorsPanel(), FoldersSidebar()
    assert panel.table.textElideMode() == Qt.TextElideMode.ElideMiddle  # the file's name stays in view
    assert sidebar.list.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff


def test_thumbnails_are_made_for_the_screens_pixels():
    """At 200 % scaling a 144 px thumbnail was stretched to 288 device pixels: blurred."""
    from fastslow_desktop.ui.models.results import ResultsModel

    model = ResultsModel(pixel_ratio=2.0)
    result = SimpleNamespace(segment_id=1, media_id=1, path="/p/1.jpg", kind="image", t_start=None, t_end=None,
                             match=None, match_probability=None, thumb=None)
    model.set_results([result])
    image = QImage(QSize(288, 288), QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.red)
    model._on_thumbnail(1, image)
    pixmap = model.index(0, 0).data(Qt.ItemDataRole.DecorationRole)
    assert pixmap.devicePixelRatio() == 2.0 and pixmap.deviceIndependentSize().toSize() == QSize(144, 144)


def test_the_welcome_text_is_as_tall_as_its_lines_after_the_window_grows(qtbot):
    """The text's height only ever grew: once narrow, a wide page kept 12 lines of room around 3 lines of text."""
    from fastslow_desktop.ui.views.welcome import WelcomePage

    page = WelcomePage()
    qtbot.addWidget(page)
    page.show()
    page.resize(160, 600)
    qtbot.wait(20)
    narrow = page.body.minimumHeight()
    page.resize(900, 600)
    qtbot.wait(20)
    line = page.body.fontMetrics().lineSpacing()
    assert page.body.minimumHeight() < narrow and page.body.minimumHeight() <= 4 * line


def test_a_sidebar_without_folders_shows_its_hint_where_the_list_would_be(qtbot):
    """The first-run sidebar was an empty white list with the hint squeezed under it."""
    from fastslow_desktop.ui.views.sidebar import FoldersSidebar

    sidebar = FoldersSidebar()
    qtbot.addWidget(sidebar)
    sidebar.resize(260, 500)
    sidebar.show()
    sidebar.set_roots([])
    assert sidebar.empty.isVisible() and not sidebar.list.isVisible()
    assert sidebar.empty.y() < sidebar.add_button.y() - 200  # at the top, not pressed against the buttons
    root = SimpleNamespace(path="/photos", n_indexed=0, n_media=0, n_errors=0, online=True, excludes=[])
    sidebar.set_roots([root])
    assert sidebar.list.isVisible() and not sidebar.empty.isVisible() and sidebar.list.count() == 1
