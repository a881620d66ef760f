"""Data sets, downloads, protocol splits and preprocessing."""

from ganad.data.download import dataset_status, download_dataset, resolve_file
from ganad.data.protocols import PROTOCOLS, make_split
from ganad.data.sources import (
    SOURCES,
    encode_csv_rows,
    load_csv,
    load_image_folder,
    load_labelled_image_folder,
    load_mvtec,
    load_source,
    read_image_files,
    read_masks,
)
from ganad.data.transforms import Preprocessor
from ganad.data.types import ArraySet, InputSpec, Source, Split

__all__ = [
    "PROTOCOLS",
    "SOURCES",
    "ArraySet",
    "InputSpec",
    "Preprocessor",
    "Source",
    "Split",
    "dataset_status",
    "download_dataset",
    "encode_csv_rows",
    "load_csv",
    "load_image_folder",
    "load_labelled_image_folder",
    "load_mvtec",
    "load_source",
    "make_split",
    "read_image_files",
    "read_masks",
    "resolve_file",
]
