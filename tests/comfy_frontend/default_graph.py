"""ComfyUI's classic SD1.5 default graph, as its frontend loaded it before 1.3x replaced it (the
graph of ComfyUI_frontend's src/scripts/defaultGraph.ts): checkpoint loader, two prompts, an
empty 512x512 latent, KSampler (seed 156680208700286, 20 steps, cfg 8, euler, normal), VAE
decode, SaveImage with prefix "ComfyUI". Frontend 1.58 opens a Z-Image graph instead, whose
model families nodegraph does not have."""

SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"


def _node(id_, type_, pos, inputs, outputs, widgets, order):
    return {"id": id_, "type": type_, "pos": pos, "size": [315, 120], "flags": {}, "order": order, "mode": 0,
            "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": type_},
            "widgets_values": widgets}


def _in(name, type_, link):
    return {"name": name, "type": type_, "link": link}


def _out(name, type_, links, slot):
    return {"name": name, "type": type_, "links": links, "slot_index": slot}


def sd15_default_graph() -> dict:
    nodes = [
        _node(4, "CheckpointLoaderSimple", [26, 474], [],
              [_out("MODEL", "MODEL", [1], 0), _out("CLIP", "CLIP", [3, 5], 1), _out("VAE", "VAE", [8], 2)],
              [SD15_CHECKPOINT], 0),
        _node(5, "EmptyLatentImage", [473, 609], [], [_out("LATENT", "LATENT", [2], 0)], [512, 512, 1], 1),
        _node(6, "CLIPTextEncode", [415, 186], [_in("clip", "CLIP", 3)], [_out("CONDITIONING", "CONDITIONING", [4], 0)],
              ["beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"], 2),
        _node(7, "CLIPTextEncode", [413, 389], [_in("clip", "CLIP", 5)], [_out("CONDITIONING", "CONDITIONING", [6], 0)],
              ["text, watermark"], 3),
        _node(3, "KSampler", [863, 186],
              [_in("model", "MODEL", 1), _in("positive", "CONDITIONING", 4), _in("negative", "CONDITIONING", 6),
               _in("latent_image", "LATENT", 2)],
              [_out("LATENT", "LATENT", [7], 0)], [156680208700286, "randomize", 20, 8, "euler", "normal", 1], 4),
        _node(8, "VAEDecode", [1209, 188], [_in("samples", "LATENT", 7), _in("vae", "VAE", 8)],
              [_out("IMAGE", "IMAGE", [9], 0)], [], 5),
        _node(9, "SaveImage", [1451, 189], [_in("images", "IMAGE", 9)], [], ["ComfyUI"], 6),
    ]
    links = [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
             [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
             [9, 8, 0, 9, 0, "IMAGE"]]
    return {"last_node_id": 9, "last_link_id": 9, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4}
