"""Real photographs bundled in scikit-image's wheel (offline; for smoke runs and tests).

Only these ship inside the wheel; other ``skimage.data`` images are downloaded at run time.
Licences are those stated in each loader's docstring.
"""

from __future__ import annotations

from pathlib import Path

from image_completion.data.sources import DownloadError, Photo, SourceResult
from image_completion.images import sha256_file

SOURCE = "skimage"
# file in skimage/data -> (loader name = split group, origin, licence)
PHOTOS = {
    "astronaut.png": ("astronaut", "Eileen Collins, NASA Great Images database", "public domain"),
    "coffee.png": ("coffee", "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    "chelsea.png": ("chelsea", "Stefan van der Walt", "CC0"),
    "rocket.jpg": ("rocket", "SpaceX, launch of DSCOVR on Falcon 9", "public domain"),
    "hubble_deep_field.jpg": ("hubble_deep_field", "NASA, HubbleSite (Hubble eXtreme Deep Field)", "public domain"),
    # The stereo pair is one scene: both views share a split (group) so no view leaks into test.
    "motorcycle_left.png": (
        "stereo_motorcycle",
        "Middlebury 2014 stereo benchmark (Scharstein et al.), left view",
        "free for research use (Middlebury)",
    ),
    "motorcycle_right.png": (
        "stereo_motorcycle",
        "Middlebury 2014 stereo benchmark (Scharstein et al.), right view",
        "free for research use (Middlebury)",
    ),
}


def data_dir() -> Path:
    import skimage.data  # noqa: PLC0415 - scikit-image's data module loads on use

    return Path(skimage.data.__file__).parent


def collect() -> SourceResult:
    """The 7 bundled photos (6 scenes) of scikit-image's ``skimage/data`` directory."""
    root = data_dir()
    photos = []
    for file, (group, origin, licence) in PHOTOS.items():
        path = root / file
        if not path.is_file():
            raise DownloadError(f"{path}: not found; is scikit-image installed from its full wheel?")
        photos.append(
            Photo(
                name=f"skimage_{Path(file).stem}",
                source=SOURCE,
                sha256=sha256_file(path),
                origin=f"scikit-image `skimage.data.{group}`: {origin}",
                licence=licence,
                path=path,
                group=group,
            )
        )
    attribution = "Photographs bundled with scikit-image (`skimage/data`), with the licences its documentation states."
    return SourceResult(photos, [], attribution)
