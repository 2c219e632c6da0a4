import os
import time

from malaria_cnn.training import runtime


def test_native_stderr_filter_drops_known_noise_and_passes_the_rest_as_it_comes(capfd):
    capfd.readouterr()
    seen = ""
    with runtime.native_stderr_filtered():
        os.write(2, b"E0000 00:00:1 1 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool x\n")
        os.write(2, b"a real warning\n")
        deadline = time.monotonic() + 10
        while "a real warning" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
            seen += capfd.readouterr().err
        assert "a real warning" in seen  # before the block ends: a long fit's messages are not held back
        os.write(2, b"written last")  # no newline: passed on when the block ends
    seen += capfd.readouterr().err
    assert seen == "a real warning\nwritten last"
