"""History of generated images for the discriminators (Shrivastava et al. 2017, used by CycleGAN).

Until the pool holds `size` images every generated image goes in and is returned as is. Afterwards each image
is, with probability 1/2, swapped with a random stored one (the stored one is returned), otherwise returned
as is. The pool draws from its own torch.Generator so its choices, and with `state_dict()` its contents,
resume exactly.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images (n, c, h, w), detached -> n images of the same shape from the history."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                i = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images drawn at random from the history (with replacement; nothing is stored or swapped): more
        generated images for a discriminator that judges several per update. Needs a non-empty pool."""
        picks = torch.randint(0, len(self.images), (n,), generator=self.generator).tolist()
        return torch.cat([self.images[i] for i in picks], 0)

    def state_dict(self) -> dict:
        """Plain tensors only (loadable with torch.load(weights_only=True))."""
        # A list, not one stacked tensor: with preprocess none/scale_width the images differ in size.
        return {"size": self.size, "images": [img.cpu() for img in self.images], "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str | None = None) -> None:
        self.size = int(state["size"])
        self.images = [img.to(device) if device is not None else img.clone() for img in state["images"]]
        self.generator.set_state(state["rng"])
