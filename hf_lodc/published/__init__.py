"""The field's published condensed sets, evaluated as their methods meant them.

``normalization`` (the code bases' per-channel constants, the input space of an evaluation), ``zca``
(MTT-family whitening), ``layouts`` (DC/DSA/DM results files, IDC mosaics, the safe loader),
``soft_labels`` (soft targets and their losses), ``evaluation`` (the protocol in a space / with a
soft loss), ``scores`` (DD-Ranking's LRS and ARS), ``teacher`` (relabelling each augmented batch),
``haba`` (HaBa's bases + hallucinators, rendered per training batch), ``relabel`` (image folders of
teacher-label methods and their FKD files). ``hf_lodc.foreign.evaluate_condensed_set`` uses them.
"""
