"""Databases, transformations and the stimuli provider: N2D2's data pipeline (spec §5)."""

from n2prune.data.databases import DATABASES, Database, StimuliSet, n2d2_data
from n2prune.data.partition import SET_NAMES, N2D2Random, Partition, split_counts
from n2prune.data.mnist import DigitsDatabase, FashionMNISTDatabase, MNISTDatabase
from n2prune.data.cifar import CIFAR10Database, CIFAR100Database
from n2prune.data.folder import DIRDatabase
from n2prune.data.gtsrb import GTSRBDatabase
from n2prune.data.imagenet import ILSVRC2012Database
from n2prune.data.exceptions import ParameterError, TransformationError
from n2prune.data.transforms import APPLY_TO, TRANSFORMATIONS, Transformation, applies_to
from n2prune.data.geometric import Flip, PadCrop, Rescale, SliceExtraction
from n2prune.data.colour import ChannelExtraction, ColorSpace, RangeAffine
from n2prune.data.provider import StimuliProvider
from n2prune.data.build import build_database, build_provider

__all__ = [
    "APPLY_TO", "CIFAR100Database", "CIFAR10Database", "ChannelExtraction", "ColorSpace",
    "DATABASES", "DIRDatabase", "Database", "DigitsDatabase", "FashionMNISTDatabase",
    "Flip", "GTSRBDatabase", "ILSVRC2012Database", "MNISTDatabase", "N2D2Random", "PadCrop",
    "ParameterError", "Partition",
    "RangeAffine", "Rescale", "SET_NAMES", "SliceExtraction", "StimuliProvider",
    "StimuliSet", "TRANSFORMATIONS", "Transformation", "TransformationError",
    "applies_to", "build_database", "build_provider", "n2d2_data", "split_counts",
]
