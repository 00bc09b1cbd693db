"""Writing files as data: `write_file`'s commands never carry the content."""

from __future__ import annotations

from io import StringIO

from pyinfra.api import FileUploadCommand

from picl.deploy.commands import UPLOADS, put, write_file


def commands(step) -> list:
    return list(write_file._inner(**step.arguments))


SECRET = "psk=correct horse battery staple\n"


def test_write_file_never_puts_the_content_in_a_command() -> None:
    prepare, upload, replace = commands(put("/etc/NetworkManager/system-connections/w",
                                            SECRET, mode="0600"))
    assert isinstance(upload, FileUploadCommand)
    assert upload.dest.startswith(UPLOADS + "/")
    assert upload.src.getvalue() == SECRET.encode()
    for command in (prepare, replace):
        assert "correct horse" not in command.get_raw_value()


def test_write_file_names_the_file_and_its_final_attributes() -> None:
    *_, replace = commands(put("/etc/sudoers.d/picl-f", "f ALL=(ALL:ALL) ALL\n", "root", "root",
                               "0440", check="visudo -cqf"))
    head = replace.get_raw_value().split("say()")[0]
    assert "D=/etc/sudoers.d\nN=picl-f\nO=root\nG=root\nM=0440\nC='visudo -cqf'\n" in head


def test_each_run_uploads_to_a_place_of_its_own() -> None:
    step = put("/etc/motd", "hi\n")
    assert commands(step)[1].dest != commands(step)[1].dest


def test_content_is_read_afresh_on_each_run() -> None:
    step = put("/etc/motd", "hi\n")
    for _ in range(2):  # a plan's check, then the run: neither consumes the other's stream
        assert commands(step)[1].src.read() == b"hi\n"


def test_bytes_are_written_as_they_are() -> None:
    from io import BytesIO
    _, upload, _ = list(write_file._inner(src=BytesIO(b"\xff\n"), dest="/etc/x"))
    assert upload.src.getvalue() == b"\xff\n"
    assert isinstance(put("/etc/x", "").arguments["src"], StringIO)
