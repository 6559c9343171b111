"""An image-generation front end on a podfleet (RunPod) endpoint: prompts in, PNGs out."""
