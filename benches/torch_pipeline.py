"""PyTorch side of `cargo bench --bench pipeline`.

Reads {"datasets": [{"name", "files"}], "size", "batch", "workers", "seed"} as
JSON on stdin; for each data set runs two epochs of a torchvision DataLoader
(PIL decode, the transforms closest to orchard's pipeline, same batch size and
number of workers as orchard's threads) and prints one JSON object with images/s
of the first (cold) and second (warm) epoch.

The transforms, per image in the workers (fastai's as torchvision has them):
Resize(size) (shorter side) + RandomCrop(size)   ~ Resize(method=crop) in training
RandomHorizontalFlip()                            ~ FlipItem / aug_transforms' flip
RandomPerspective(0.2, p=0.75)                    ~ Warp(0.2, p_affine)
RandomApply([RandomAffine(10, scale=(1, 1.1))], 0.75) ~ Rotate + Zoom
RandomApply([ColorJitter(0.2, 0.2)], 0.75)        ~ Brightness + Contrast
ToTensor + Normalize(ImageNet)
"""
import json
import sys
import time


def main():
    req = json.load(sys.stdin)
    try:
        import torch
        import torchvision
        from torchvision import transforms as T
        from PIL import Image
    except Exception as e:  # noqa: BLE001 - report any import failure as a skip
        print(json.dumps({"error": f"cannot import torch/torchvision/PIL: {e}"}))
        return
    size, bs, workers = req["size"], req["batch"], req["workers"]
    torch.manual_seed(req["seed"])
    tf = T.Compose([
        T.Resize(size),
        T.RandomCrop(size),
        T.RandomHorizontalFlip(),
        T.RandomPerspective(distortion_scale=0.2, p=0.75),
        T.RandomApply([T.RandomAffine(degrees=10, scale=(1.0, 1.1))], p=0.75),
        T.RandomApply([T.ColorJitter(brightness=0.2, contrast=0.2)], p=0.75),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])

    class Files(torch.utils.data.Dataset):
        def __init__(self, files):
            self.files = files

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            with Image.open(self.files[i]) as im:
                return tf(im.convert("RGB")), 0

    out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "results": {}}
    for ds in req["datasets"]:
        loader = torch.utils.data.DataLoader(
            Files(ds["files"]), batch_size=bs, shuffle=True, num_workers=workers,
            drop_last=True, persistent_workers=workers > 0,
        )
        epochs = []
        for _ in range(2):
            t0 = time.perf_counter()
            n = 0
            for x, _ in loader:
                n += x.shape[0]
            epochs.append(n / (time.perf_counter() - t0))
        out["results"][ds["name"]] = {"cold": epochs[0], "warm": epochs[1]}
        del loader
    print(json.dumps(out))


if __name__ == "__main__":
    main()
