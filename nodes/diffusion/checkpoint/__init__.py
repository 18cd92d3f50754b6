"""Stable Diffusion model files: single-file checkpoints (original layout) and diffusers folders.

Import from the module that owns a name:
  layout             the original key layout, family facts, CheckpointError, LoadedCheckpoint, key helpers
  files              weights_of (a path read safely, or the service's WeightsFile), read_hints (what
                     nodegraph's writer stores in metadata)
  config_inference   diffusers / transformers configs from tensor shapes (+ hints)
  modules            build_unet / build_vae / build_clip on the meta device, materialise, clip_core
  from_ldm, to_ldm   key conversion original -> diffusers (diffusers' converters) and back
  single_file        load_checkpoint (a file, a WeightsFile or a diffusers folder), load_state_dict_checkpoint, family and prediction-type detection
  components         load_unet_file / load_vae_file / load_clip_file (UNETLoader, VAELoader, CLIPLoader)
  diffusers_folder   load_diffusers_folder / save_diffusers_folder
  writer             save_single_file: modules -> one safetensors file in the original layout
"""
