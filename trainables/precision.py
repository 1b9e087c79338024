"""The numeric precisions a trial may train in (``soundsweep tune --precision``), as names.

Names only, so the command line lists them without loading torch; the training loop
(:func:`trainables.loop.training_precision`) picks one for its device and looks up the torch
dtype of a mixed precision by its name in :data:`AMP_DTYPES`.
"""
AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
"""Mixed precision -> the name of its ``torch`` dtype (what ``torch.autocast`` runs the model in)."""
PRECISIONS = ("auto", "fp32", *AMP_DTYPES)
"""``auto`` (bf16 where the GPU has it, else fp16), plain fp32, or one mixed precision."""
