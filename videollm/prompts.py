"""The prompts the embedded model is trained with and the product asks with: one place, so they never drift."""

VIDEO = "<video>"
IMAGE = "<image>"

#: Per-scene caption (the readout of the scene just watched).
CAPTION = "Describe the scene."
#: Caption length bound in new tokens, for the product and the evaluation alike (world captions are 10-25 tokens).
CAPTION_TOKENS = 32
#: Whole-video summary after the last scene.
SUMMARY = "Summarize the video."
#: EgoPlan-style next-step question; format with goal=...
PLAN = "Goal: {goal}. What is the next step?"
