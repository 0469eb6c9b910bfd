"""Builders that turn each real dataset's raw files into the constructed format (docs/formats.md).

One module per source: it knows the source's on-disk layout, how to download the raw files
(``download(raw_dir, **params)``, where the source can be downloaded) and how to construct the
dataset (``construct(raw_dir, out_dir, **params)``). Helpers shared by the builders live in
:mod:`zoomin.data.sources.common`.
"""
