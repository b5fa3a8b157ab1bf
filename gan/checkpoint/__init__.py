"""Model files: the one owner of what a training run writes and of reading every kind of model source.

    schema    a training checkpoint (one .pt file, versioned, atomic, weights_only): pack, save, load, migrate
    runs      a run folder's metrics.jsonl (what the tracker appends, what tools read back)
    folder    a saved folder (model.safetensors + config.json): written by `gan.hub.publish`, read here
    exported  this project's ONNX and TorchScript exports, as runnable networks with the record they carry
    source    open_model(spec): any source a user may name (a run folder, a .pt, a reference .pth, a saved
              folder, hf:, zoo:, an export) as one ModelFile that answers the kind, the model config and the
              weights of a named net (EMA or raw, chosen there), and builds the inference networks

Training writes through `schema` and `runs`; inference, the app, export and the hub only read, through `source`.
Below both training and inference; names (zoo:, hf:) are turned into local paths by gan.hub.sources.
"""
