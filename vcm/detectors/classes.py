"""What every detector returns and the class names it speaks: one frame's ``Detections`` and the
COCO-80 classes (SFU-HW's convention: 0-based, person = 0), with the loose name matching that
ground-truth files and torchvision's label lists are read with."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
    "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
    "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
    "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
).split()
assert len(COCO80) == 80

# Other datasets' names for COCO classes (Pascal VOC and common spellings).
ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "tvmonitor": "tv",
           "tv monitor": "tv", "diningtable": "dining table", "pottedplant": "potted plant", "pedestrian": "person",
           "people": "person", "bike": "bicycle", "cellphone": "cell phone", "mobile phone": "cell phone"}


def norm(name: str) -> str:
    """Class names compared loosely: ``Traffic_Light`` = ``traffic light`` = ``traffic-light``."""
    n = re.sub(r"[\s_\-]+", " ", str(name).strip().lower())
    return ALIASES.get(n, ALIASES.get(n.replace(" ", ""), n))


@dataclass
class Detections:
    """One frame's detections: ``boxes`` float [N,4] as x1,y1,x2,y2 pixels, ``scores`` [N], ``classes`` int [N] (COCO-80)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
