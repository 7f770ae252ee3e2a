"""A short example: prune a small Conv/Fc network with PruneCell while it learns.

    python tools/example_prune.py

It learns to tell horizontal from vertical bars in noisy 8x8 images (generated here, no
download), with Gradual IterNonStruct pruning to 80 % sparsity on every Conv and Fc cell.
"""

import torch

import n2prune
from n2prune.cells import Conv, Fc, Sequence
from n2prune.prune.prunecell import PruneCell


def bars(count: int, generator: torch.Generator):
    """Noisy 8x8 images with one horizontal (label 0) or vertical (label 1) bar."""
    labels = torch.randint(0, 2, (count,), generator=generator)
    where = torch.randint(0, 8, (count,), generator=generator)
    images = 0.3 * torch.randn(count, 1, 8, 8, generator=generator)
    for i in range(count):
        if labels[i] == 0:
            images[i, 0, where[i], :] += 1.0
        else:
            images[i, 0, :, where[i]] += 1.0
    return images, labels


def main() -> None:
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(0)
    model = Sequence([
        Conv(1, 16, kernel_dims=[3, 3], padding_dims=[1, 1], activation=torch.nn.ReLU()),
        Conv(16, 16, kernel_dims=[3, 3], stride_dims=[2, 2], activation=torch.nn.ReLU()),
        Fc(16 * 3 * 3, 2),
    ])
    for cell in model:
        cell.quantizer = PruneCell(prune_mode="Gradual", prune_filler="IterNonStruct",
                                   threshold=0.8, start=0.2, gamma=0.1, stepsize=2048)
    images, labels = bars(4096, data)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(6):
        order = torch.randperm(len(images), generator=data)
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
            loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for cell in model:
                cell.quantizer.update(len(batch))
        test_images, test_labels = bars(1024, torch.Generator().manual_seed(1))
        with torch.no_grad():
            accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
        sparsity = [f"{cell.quantizer.sparsity():.2f}" for cell in model]
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}  test accuracy {accuracy:.3f}  "
              f"sparsity per cell {' '.join(sparsity)}")
    for cell in model:
        print(f"{type(cell).__name__:>4}: {cell.quantizer}")
    print(f"n2prune {n2prune.__version__}: masks follow N2D2's PruneCell exactly; "
          f"see README.md for the INI and command-line tools.")


if __name__ == "__main__":
    main()
