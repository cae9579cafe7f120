import pytest
from PIL import Image

from lpirc import data, loaders, stream


def write_ilsvrc(folder, n=6, size=(80, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(1, n + 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        Image.new("RGB", size, (i * 30 % 256, 10, 10)).save(folder / name, format="JPEG")
        lines.append(f"{name} {i % 3}")
    (folder / "val.txt").write_text("\n".join(lines) + "\n")
    return folder / "val.txt"


def test_ilsvrc_folder(tmp_path):
    labels = write_ilsvrc(tmp_path / "val")
    lst = loaders.read_ilsvrc(tmp_path / "val", labels)
    assert lst.layout == "ilsvrc" and len(lst.paths) == 6 and len(lst.classes) == 1000
    assert lst.labels.tolist() == [1, 2, 0, 1, 2, 0]


def test_ilsvrc_bad_line_and_missing_image(tmp_path):
    labels = write_ilsvrc(tmp_path / "val", n=2)
    labels.write_text("ILSVRC2012_val_00000001.JPEG\n")
    with pytest.raises(loaders.DataError, match="expected 'FILENAME LABEL'"):
        loaders.read_ilsvrc(tmp_path / "val", labels)
    labels.write_text("ILSVRC2012_val_00000099.JPEG 3\n")
    with pytest.raises(loaders.DataError, match="missing"):
        loaders.read_ilsvrc(tmp_path / "val", labels)


def test_class_folder_and_corrupt_image(tmp_path):
    for cls in ("b_dog", "a_cat"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 40), (200, 0, 0)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a_cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    lst = loaders.read_image_folder(tmp_path)
    assert lst.classes == ["a_cat", "b_dog"] and len(lst.paths) == 5
    ok = stream.decodable(lst.paths)                 # the data step's pass over every listed file
    assert [p.name for p, good in zip(lst.paths, ok) if not good] == ["broken.jpg"]


def test_empty_or_missing_folders(tmp_path):
    with pytest.raises(loaders.DataError, match="does not exist"):
        loaders.read_image_folder(tmp_path / "nope")
    with pytest.raises(loaders.DataError, match="no class subfolders"):
        loaders.read_image_folder(tmp_path)


def test_import_folders_writes_the_embedded_layout(tmp_path):
    labels = write_ilsvrc(tmp_path / "val")
    train = tmp_path / "train"
    for cls in ("0", "1", "2"):
        (train / cls).mkdir(parents=True)
        Image.new("RGB", (50, 50), (0, 90, 0)).save(train / cls / "x.png")
    rec = data.import_folders(tmp_path / "out", {"train": str(train), "val": str(tmp_path / "val")}, 24,
                              {"val": str(labels)}, progress=False)
    assert rec["splits"]["train"]["n"] == 3 and rec["splits"]["val"]["n"] == 6
    x, y = data.load_split(tmp_path / "out", "val")
    assert x.shape == (6, 24, 24, 3)
    with pytest.raises(loaders.DataError, match="needs a 'train' folder"):
        data.import_folders(tmp_path / "o2", {"val": str(tmp_path / "val")}, 24, {"val": str(labels)})
