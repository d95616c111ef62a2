"""The packager's zip layout, checked on bytes in memory."""

from __future__ import annotations

import io
import zipfile

from support.pkgfactory import plugin_files

from dify_lambda.packaging.packager import zip_files


def test_layout_is_plain_sorted_and_deterministic() -> None:
    files = plugin_files()
    shuffled = dict(sorted(files.items(), reverse=True))
    data = zip_files(shuffled)
    assert data == zip_files(files)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert zf.comment == b""
        assert [i.filename for i in infos] == sorted(files)
        for info in infos:
            assert not info.is_dir()
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert "\\" not in info.filename
            assert zf.read(info) == files[info.filename]
