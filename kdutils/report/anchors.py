"""Published figures the study is measured against, as data with their sources.

Copied from ``docs/anchors.md`` (the team's reading of the papers and public
reimplementations). They are the bar, not targets: the report prints them beside
the study's own numbers and never mixes the two. Accuracies here are in percent,
as the sources print them (the run's ``summary.json`` holds fractions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reference:
    key: str
    text: str
    url: str = ""


@dataclass(frozen=True)
class DistillationResult:
    """One published teacher -> small-student distillation result on sentiment."""

    work: str
    ref: str  # key into REFERENCES
    task: str
    teacher: str
    teacher_accuracy: float | None
    student: str
    baseline_accuracy: float | None
    distilled_accuracy: float | None
    # As the source states it; None where the source gives no baseline.
    gain_points: float | None
    augmentation: bool | None
    note: str = ""


@dataclass(frozen=True)
class SmallTransformer:
    model: str
    ref: str
    shape: str  # layers / hidden
    params: str
    sst2: str
    speed: str = ""


@dataclass(frozen=True)
class CpuInferenceFact:
    ref: str
    fact: str
    numbers: dict[str, Any] = field(default_factory=dict)


REFERENCES: dict[str, Reference] = {
    r.key: r
    for r in (
        Reference(
            "original",
            "The earlier knowledge-distillation project this study reproduces and extends: "
            "a 12-layer BERT teacher, 1-layer BiLSTM students, a FastAPI service (unpublished "
            "report; figures as summarised in the project's docs/anchors.md).",
        ),
        Reference(
            "tang2019",
            "Tang, R., Lu, Y., Liu, L., Mou, L., Vechtomova, O., Lin, J. (2019). Distilling "
            "Task-Specific Knowledge from BERT into Simple Neural Networks. arXiv:1903.12136.",
            "https://arxiv.org/abs/1903.12136",
        ),
        Reference(
            "paddlenlp",
            "PaddlePaddle. PaddleNLP: distillation of BERT into a BiLSTM (a port of Tang et al. "
            "2019), model-compression examples.",
            "https://github.com/PaddlePaddle/PaddleNLP",
        ),
        Reference(
            "pvgladkov",
            "Gladkov, P. knowledge-distillation: BERT to BiLSTM distillation on SST-2 "
            "(GitHub repository).",
            "https://github.com/pvgladkov/knowledge-distillation",
        ),
        Reference(
            "tacchinotacchi",
            "tacchinotacchi. distil-bilstm: distilling BERT into a BiLSTM (GitHub repository).",
            "https://github.com/tacchinotacchi/distil-bilstm",
        ),
        Reference(
            "hinton2015",
            "Hinton, G., Vinyals, O., Dean, J. (2015). Distilling the Knowledge in a Neural "
            "Network. arXiv:1503.02531.",
            "https://arxiv.org/abs/1503.02531",
        ),
        Reference(
            "turc2019",
            "Turc, I., Chang, M.-W., Lee, K., Toutanova, K. (2019). Well-Read Students Learn "
            "Better: On the Importance of Pre-training Compact Models. arXiv:1908.08962.",
            "https://arxiv.org/abs/1908.08962",
        ),
        Reference(
            "sanh2019",
            "Sanh, V., Debut, L., Chaumond, J., Wolf, T. (2019). DistilBERT, a distilled version "
            "of BERT: smaller, faster, cheaper and lighter. arXiv:1910.01108.",
            "https://arxiv.org/abs/1910.01108",
        ),
        Reference(
            "jiao2020",
            "Jiao, X., Yin, Y., Shang, L., Jiang, X., Chen, X., Li, L., Wang, F., Liu, Q. (2020). "
            "TinyBERT: Distilling BERT for Natural Language Understanding. Findings of EMNLP "
            "2020. arXiv:1909.10351.",
            "https://arxiv.org/abs/1909.10351",
        ),
        Reference(
            "wang2020",
            "Wang, W., Wei, F., Dong, L., Bao, H., Yang, N., Zhou, M. (2020). MiniLM: Deep "
            "Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained "
            "Transformers. NeurIPS 2020. arXiv:2002.10957.",
            "https://arxiv.org/abs/2002.10957",
        ),
        Reference(
            "reimers2019",
            "Reimers, N., Gurevych, I. (2019). Sentence-BERT: Sentence Embeddings using Siamese "
            "BERT-Networks. EMNLP-IJCNLP 2019. arXiv:1908.10084 (the sentence-transformers "
            "models all-MiniLM-L6-v2 and all-mpnet-base-v2 used as teachers here).",
            "https://arxiv.org/abs/1908.10084",
        ),
        Reference(
            "song2020",
            "Song, K., Tan, X., Qin, T., Lu, J., Liu, T.-Y. (2020). MPNet: Masked and Permuted "
            "Pre-training for Language Understanding. NeurIPS 2020. arXiv:2004.09297.",
            "https://arxiv.org/abs/2004.09297",
        ),
        Reference(
            "pang2005",
            "Pang, B., Lee, L. (2005). Seeing Stars: Exploiting Class Relationships for Sentiment "
            "Categorization with Respect to Rating Scales. ACL 2005 (the sentence polarity "
            "data set, known as rotten_tomatoes).",
            "https://aclanthology.org/P05-1015/",
        ),
        Reference(
            "maas2011",
            "Maas, A. L., Daly, R. E., Pham, P. T., Huang, D., Ng, A. Y., Potts, C. (2011). "
            "Learning Word Vectors for Sentiment Analysis. ACL 2011 (the IMDB review data set).",
            "https://aclanthology.org/P11-1015/",
        ),
        Reference(
            "socher2013",
            "Socher, R., Perelygin, A., Wu, J., Chuang, J., Manning, C. D., Ng, A., Potts, C. "
            "(2013). Recursive Deep Models for Semantic Compositionality Over a Sentiment "
            "Treebank. EMNLP 2013 (SST, built from the same Rotten Tomatoes sentences).",
            "https://aclanthology.org/D13-1170/",
        ),
        Reference(
            "pennington2014",
            "Pennington, J., Socher, R., Manning, C. D. (2014). GloVe: Global Vectors for Word "
            "Representation. EMNLP 2014.",
            "https://aclanthology.org/D14-1162/",
        ),
        Reference(
            "pytorch_quant",
            "PyTorch tutorials. (beta) Dynamic Quantization on BERT.",
            "https://pytorch.org/tutorials/intermediate/dynamic_quantization_bert_tutorial.html",
        ),
        Reference(
            "onnxruntime",
            "ONNX Runtime: a cross-platform inference and training accelerator.",
            "https://onnxruntime.ai/",
        ),
    )
}


DISTILLATION_RESULTS: tuple[DistillationResult, ...] = (
    DistillationResult(
        work="Original study (reproduced here)",
        ref="original",
        task="sentiment (the original's data)",
        teacher="BERT-base, 12 layers, 110M",
        teacher_accuracy=None,
        student="1-layer BiLSTM, embedding 16, hidden 8",
        baseline_accuracy=65.6,
        distilled_accuracy=67.9,
        gain_points=2.3,
        augmentation=False,
        note="one run per model, no confidence interval",
    ),
    DistillationResult(
        work="Tang et al. 2019",
        ref="tang2019",
        task="SST-2 test",
        teacher="BERT-large (BERT-base 93.5)",
        teacher_accuracy=94.9,
        student="1-layer BiLSTM, ~1M params, 300-d word2vec",
        baseline_accuracy=86.7,
        distilled_accuracy=90.7,
        gain_points=4.0,
        augmentation=True,
        note="transfer set augmented 20x (masking, POS-guided replacement, n-grams)",
    ),
    DistillationResult(
        work="PaddleNLP port of Tang et al.",
        ref="paddlenlp",
        task="SST-2 dev",
        teacher="BERT-base",
        teacher_accuracy=93.0,
        student="BiLSTM",
        baseline_accuracy=85.4,
        distilled_accuracy=88.8,
        gain_points=3.3,
        augmentation=True,
        note="gain as the port states it",
    ),
    DistillationResult(
        work="pvgladkov/knowledge-distillation",
        ref="pvgladkov",
        task="SST-2, own split",
        teacher="BERT",
        teacher_accuracy=92.0,
        student="BiLSTM, 0.84M params",
        baseline_accuracy=75.0,
        distilled_accuracy=76.0,
        gain_points=1.0,
        augmentation=False,
        note="no augmentation",
    ),
    DistillationResult(
        work="tacchinotacchi/distil-bilstm",
        ref="tacchinotacchi",
        task="SST-2",
        teacher="BERT-large",
        teacher_accuracy=93.0,
        student="BiLSTM",
        baseline_accuracy=None,
        distilled_accuracy=88.4,
        gain_points=None,
        augmentation=True,
        note=">500 sentences/s on one laptop core",
    ),
)


SMALL_TRANSFORMERS: tuple[SmallTransformer, ...] = (
    SmallTransformer("BERT-Tiny", "turc2019", "2/128", "~4M", "83.2 (test)"),
    SmallTransformer("BERT-Mini", "turc2019", "4/256", "~11M", "85.9 (test)"),
    SmallTransformer("BERT-Small", "turc2019", "4/512", "~29M", "89.7 (test)"),
    SmallTransformer("BERT-Medium", "turc2019", "8/512", "~42M", "89.6 (test)"),
    SmallTransformer("DistilBERT", "sanh2019", "6/768", "66M", "91.3 (dev; BERT-base 92.7)",
                     "60% faster than BERT-base"),
    SmallTransformer("TinyBERT-4", "jiao2020", "4/312", "14.5M", "92.6 (test)",
                     "9.4x faster than BERT-base"),
    SmallTransformer("MiniLM L6xH384", "wang2020", "6/384", "22M", "91.5 (dev)",
                     "5.3x faster than BERT-base"),
)


CPU_INFERENCE: tuple[CpuInferenceFact, ...] = (
    CpuInferenceFact(
        "pytorch_quant",
        "dynamic int8 quantization of BERT-base (MRPC), single thread",
        {"size_mb_fp32": 438, "size_mb_int8": 181, "seconds_fp32": 160, "seconds_int8": 90,
         "f1_fp32": 0.902, "f1_int8": 0.902},
    ),
    CpuInferenceFact(
        "onnxruntime",
        "ONNX Runtime on CPU over eager PyTorch for BERT",
        {"speedup_low": 1.5, "speedup_high": 3.0},
    ),
)


def published_gains(augmented: bool | None = None) -> list[float]:
    """Gains (points) of the published results that report one, optionally by augmentation."""
    return [
        r.gain_points
        for r in DISTILLATION_RESULTS
        if r.gain_points is not None and r.ref != "original"
        and (augmented is None or r.augmentation == augmented)
    ]


def as_dict() -> dict[str, Any]:
    """Everything above as plain data (for templates and JSON)."""
    return {
        "references": {k: asdict(v) for k, v in REFERENCES.items()},
        "distillation": [asdict(r) for r in DISTILLATION_RESULTS],
        "small_transformers": [asdict(r) for r in SMALL_TRANSFORMERS],
        "cpu_inference": [asdict(r) for r in CPU_INFERENCE],
    }
