"""Instruction tuning: make an instruction-tuned counterpart of a base model (LoRA or full),
and check that it follows instructions.

corpus (the instruction data format, n-gram overlap checks) -> template (the chat template
registered on the tuned tokenizer) -> train (the supervised fine-tuning loop, checkpoints,
resume, manifest) -> following (greedy answers on held-out instructions, checks without an
LLM judge).
"""
