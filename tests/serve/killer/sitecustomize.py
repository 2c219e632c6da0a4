"""Loaded by `malaria-cnn serve` started with this folder on PYTHONPATH (tests/serve/test_restart.py): the
photo stored as $MALARIA_CNN_TEST_KILLER (a file name in the workspace's uploads/) gets the process killed
with SIGKILL while it is prepared, as the kernel's out-of-memory killer would."""

import os

if os.environ.get("MALARIA_CNN_TEST_KILLER"):
    import signal

    from malaria_cnn.screening import screen

    _prepare = screen.prepare

    def prepare(item, *args, **kwargs):
        if os.path.basename(str(item.name)) == os.environ["MALARIA_CNN_TEST_KILLER"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return _prepare(item, *args, **kwargs)

    screen.prepare = prepare
