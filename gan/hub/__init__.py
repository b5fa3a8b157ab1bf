"""Distribution: where named models come from and how trained ones are shared.

    sources   `zoo:NAME` and `hf:user/repo[@rev]` turned into local paths (below the model reader, which calls it)
    zoo       the reference's pretrained CycleGAN generators: catalogue, cached download, checks
    publish   a trained model saved as a folder (safetensors, config.json, model card) and pushed to the Hub

`python -m gan.hub save|push` is the command (gan.commands.hub).
"""
