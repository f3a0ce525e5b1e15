"""The media layer: which files FastSlow reads, and the one way they are opened and decoded.

Indexing, re-ranking, thumbnails and the preview all decode through here (Pillow with pillow-heif
and Pillow's AVIF for photos, rawpy for RAW when installed, OpenCV for video); no Qt, no library.
"""

from .capture import CONTAINER, EXIF, MTIME, capture_time, container_creation_time
from .files import DecodeError, NotARegularFile, open_regular, partial_hash
from .formats import (
    FORMATS,
    IMAGE_EXTENSIONS,
    PHOTO_EXTENSIONS,
    RAW_EXTENSIONS,
    VIDEO_EXTENSIONS,
    file_format,
    is_photo,
    media_kind,
)
from .images import MAX_DECODE_BYTES, MAX_PIXELS, ImageInfo
from .photos import load_image, open_image
from .raw import RAW_EXTRA_HINT
from .video import (
    FRAMES_PER_SEGMENT,
    VideoInfo,
    VideoSegment,
    frame_times,
    iter_video_segments,
    video_frame,
    video_frames,
)

__all__ = [
    "CONTAINER", "EXIF", "MTIME", "capture_time", "container_creation_time",
    "FORMATS", "FRAMES_PER_SEGMENT", "IMAGE_EXTENSIONS", "MAX_DECODE_BYTES",
    "MAX_PIXELS", "PHOTO_EXTENSIONS", "RAW_EXTENSIONS", "RAW_EXTRA_HINT", "VIDEO_EXTENSIONS", "DecodeError",
    "ImageInfo", "NotARegularFile", "VideoInfo", "VideoSegment", "file_format", "frame_times", "is_photo",
    "iter_video_segments", "load_image", "media_kind", "open_image", "open_regular",
    "partial_hash", "video_frame", "video_frames",
]
