"""IPTC image-region content types for what objsearch finds.

An IPTC image region names its content type from the IPTC "Image Region Type" vocabulary
(``http://cv.iptc.org/newscodes/imageregiontype/``). The vocabulary has no generic
"object", so detector labels are mapped by meaning (COCO's 80 classes are all covered: the
made things, furniture to toothbrushes, are the vocabulary's ``product``), and a label the
table does not know (an open-vocabulary detector's "dragonfly") keeps its name with no
vocabulary identifier rather than a wrong one.
"""

from __future__ import annotations

IPTC_REGION_TYPES = "http://cv.iptc.org/newscodes/imageregiontype/"
TEXT = "text"
UNKNOWN = "object"  # the content type's name when no vocabulary term fits

_BY_TYPE: dict[str, tuple[str, ...]] = {
    "human": ("person", "man", "woman", "child"),
    "animal": (
        "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
        "butterfly", "fish",
    ),
    "vehicle": ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"),
    "food": (
        "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
        "donut", "cake",
    ),
    "plant": ("potted plant", "flowerpot", "plant", "flower", "tree"),
    "clothing": ("tie", "hat", "shoe"),
    "building": ("building", "house"),
    "machineCode": ("barcode", "qr code"),
    "product": (
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "backpack",
        "umbrella", "handbag", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
        "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
        "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "chair", "couch",
        "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
        "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
    ),
}  # fmt: skip
_TYPE_OF = {label: kind for kind, labels in _BY_TYPE.items() for label in labels}


def content_type(label: str, *, text: bool = False) -> tuple[str, str | None]:
    """(type name, vocabulary identifier or None) of a region: ``text`` for text regions."""
    kind = TEXT if text else _TYPE_OF.get(label.strip().lower())
    if kind is None:
        return UNKNOWN, None
    return kind, IPTC_REGION_TYPES + kind
