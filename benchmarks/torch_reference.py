"""Reference training step: the official SimSiam recipe in PyTorch, timed on this machine.

    .venv-torch/bin/python benchmarks/torch_reference.py --image-size 64 --batch-size 128 --steps 10

What `python -m benchmarks.throughput --torch-python .venv-torch/bin/python` compares the project's
step with, in the same invocation. It follows the official implementation
(https://github.com/facebookresearch/simsiam, `main_simsiam.py`) as closely as this machine allows:
torchvision's ResNet-18 layout (ImageNet stem, zero-initialised last BN per block), the 3-layer
projector and 2-layer predictor, SGD with momentum 0.9 and weight decay, float32, and the paper's
augmentations applied per image with Pillow in `DataLoader` workers, as torchvision's transforms do
on PIL images (RandomResizedCrop (0.2, 1), flip, ColorJitter 0.4/0.4/0.4/0.1 with p 0.8 in a random
order, grayscale p 0.2, Gaussian blur p 0.5). torchvision itself is not used: the PyTorch build
installable here has no matching torchvision, so those few transforms are written out below with
the same Pillow calls torchvision makes.

Standalone on purpose (torch, numpy and Pillow only; no project imports): it runs in its own
Python 3.11 environment beside the project's Python 3.10 one. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from torch import nn


# --- augmentations (torchvision's PIL code paths, written out) -------------------------------------
def random_resized_crop(img: Image.Image, size: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> Image.Image:
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = random.randint(0, height - h), random.randint(0, width - w)
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    return img.resize((size, size), Image.BILINEAR)


def adjust_hue(img: Image.Image, factor: float) -> Image.Image:
    h, s, v = img.convert("HSV").split()
    h = Image.fromarray((np.asarray(h, np.uint8) + np.uint8(int(factor * 255) % 256)).astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def color_jitter(img: Image.Image, b=0.4, c=0.4, s=0.4, h=0.1) -> Image.Image:
    ops = [
        lambda x: ImageEnhance.Brightness(x).enhance(random.uniform(1 - b, 1 + b)),
        lambda x: ImageEnhance.Contrast(x).enhance(random.uniform(1 - c, 1 + c)),
        lambda x: ImageEnhance.Color(x).enhance(random.uniform(1 - s, 1 + s)),
        lambda x: adjust_hue(x, random.uniform(-h, h)),
    ]
    for i in torch.randperm(4).tolist():
        img = ops[i](img)
    return img


def augment(img: Image.Image, size: int) -> torch.Tensor:
    x = random_resized_crop(img, size)
    if random.random() < 0.5:
        x = x.transpose(Image.FLIP_LEFT_RIGHT)
    if random.random() < 0.8:
        x = color_jitter(x)
    if random.random() < 0.2:
        x = x.convert("L").convert("RGB")
    if random.random() < 0.5:
        x = x.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0) * size / 224))
    t = torch.from_numpy(np.asarray(x, np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (t - mean) / std


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, size: int):
        self.images, self.size = images, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])
        return augment(img, self.size), augment(img, self.size)


# --- ResNet-18 (torchvision layout) and the SimSiam heads -------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn2.weight)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


def resnet18() -> nn.Module:
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for i in range(2):
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


class SimSiam(nn.Module):
    def __init__(self, dim: int = 2048, pred_dim: int = 512):
        super().__init__()
        self.backbone = resnet18()
        self.projector = nn.Sequential(
            nn.Linear(512, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Linear(512, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Linear(512, dim, bias=False),
            nn.BatchNorm1d(dim, affine=False),
        )  # the official code widens the backbone's fc: prev_dim -> prev_dim -> prev_dim -> dim
        self.predictor = nn.Sequential(
            nn.Linear(dim, pred_dim, bias=False), nn.BatchNorm1d(pred_dim), nn.ReLU(), nn.Linear(pred_dim, dim)
        )

    def forward(self, x1, x2):
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        return self.predictor(z1), self.predictor(z2), z1.detach(), z2.detach()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64, help="training view size (px)")
    parser.add_argument("--stored-size", type=int, default=72, help="size of the stored images cropped from")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (0: in the main one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    rng = np.random.default_rng(0)  # smooth random images, as benchmarks/throughput.py makes them
    low = rng.integers(0, 256, (args.batch_size, 8, 8, 3)).astype(np.uint8)
    reps = args.stored_size // 8 + 1
    images = np.repeat(np.repeat(low, reps, 1), reps, 2)[:, : args.stored_size, : args.stored_size]
    loader = torch.utils.data.DataLoader(
        TwoViews(images, args.image_size),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    model = SimSiam()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CosineSimilarity(dim=1)
    model.train()
    done, start = 0, None
    while done < args.warmup_steps + args.steps:
        for x1, x2 in loader:
            p1, p2, z1, z2 = model(x1, x2)
            loss = -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == args.warmup_steps:
                start = time.perf_counter()
            if done == args.warmup_steps + args.steps:
                break
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "benchmark": "torch_reference",
                "torch": torch.__version__,
                "image_size": args.image_size,
                "stored_size": args.stored_size,
                "batch_size": args.batch_size,
                "steps": args.steps,
                "workers": args.workers,
                "threads": args.threads,
                "seconds": round(seconds, 3),
                "views_per_s": round(2 * args.batch_size * args.steps / seconds, 1),
                "final_loss": round(loss.item(), 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
