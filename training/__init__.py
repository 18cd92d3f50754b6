"""Training scripts of the shipped models and the data they learn from (default_world).

training/ may import the node packs; packs and the engine never import training/.
"""
