# TEMPORARY local stub until the sample branch merges (not committed)
import torch
from PIL import Image


def images_to_uint8(images):
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_grid(images_uint8, rows, cols):
    n, c, h, w = images_uint8.shape
    grid = torch.zeros(c, rows * h, cols * w, dtype=torch.uint8)
    for i in range(min(n, rows * cols)):
        r, q = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, q * w : (q + 1) * w] = images_uint8[i]
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(images, path, rows, cols):
    arr = make_grid(images_to_uint8(images), rows, cols)
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(path)
