"""Runs a WASI command module on this process's stdin, stdout and stderr, under the wasmtime
runtime from PyPI, and exits with the module's exit code:

    python run_core.py mcp-edge-core.wasm

So the module is an MCP server on stdio that an MCP client can spawn like any other.
"""

import sys

from wasmtime import Engine, ExitTrap, Linker, Module, Store, WasiConfig


def main():
    path = sys.argv[1]
    engine = Engine()
    linker = Linker(engine)
    linker.define_wasi()
    store = Store(engine)
    wasi = WasiConfig()
    wasi.argv = [path]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    instance = linker.instantiate(store, Module.from_file(engine, path))
    try:
        instance.exports(store)["_start"](store)
    except ExitTrap as exit:
        sys.exit(exit.code)


if __name__ == "__main__":
    main()
