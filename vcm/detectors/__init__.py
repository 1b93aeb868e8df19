"""Task networks (detectors): one registry, one module per family, below both the mask sources
(``boxes:NAME`` masks) and evaluation, so neither depends on the other through them.

A detector turns frames into boxes::

    detect(frames_u8: uint8 [T,3,H,W] RGB, source_frames: list[int]) -> list[Detections]  # one per frame

and says what it is: ``name``, ``classes`` (the names its class indices stand for; COCO-80 for the
COCO-trained ones) and ``settings()`` (input size, thresholds, NMS, weights: data, written into
every score file and report). Entries:

- ``yolov7`` (default): YOLOv7 from a local repo or torch.hub's copy (:mod:`vcm.detectors.yolov7`);
- ``fasterrcnn_resnet50_fpn_v2``, ``retinanet_resnet50_fpn_v2``, …: torchvision's detectors
  through its weights API and cache (:mod:`vcm.detectors.torchvision_models`);
- ``opencv-face``, …: OpenCV's shipped cascades (:mod:`vcm.detectors.opencv`);
- ``MODULE:ATTR`` or ``FILE.py:ATTR``: a user's own detector (:mod:`vcm.detectors.user`).

Evaluation adds ``oracle`` (the ground truth itself, :mod:`vcm.eval.detect`). Adding one = a module
with a function decorated by :func:`vcm.detectors.registry.register_detector` (a leaf) + its module in
that registry's list. Options (``--set key=value``, a CTC config's ``settings``) are checked against the
entry's settings dataclass by its ``settings_of``, a CTC config's before any point is coded: a typo is an error.
"""
