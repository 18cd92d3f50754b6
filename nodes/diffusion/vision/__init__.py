"""Image-conditioning models of the diffusion pack: CLIP vision encoders, T2I style adapters, unCLIP's
noise augmentation (ComfyUI's clip_vision.py, t2i_adapter StyleAdapter, noise_aug_modules.py)."""
