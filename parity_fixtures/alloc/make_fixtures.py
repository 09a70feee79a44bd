"""Record ggml-alloc placements for every scenario of llama.cpp's tests/test-alloc.cpp.

Compiles llama.cpp's own tests/test-alloc.cpp (from the vendored llama-cpp-python 0.3.36 source)
with a dump hook injected after each `check_all_allocated(graph)`, links it against the built
libggml-base/libggml of ~/.cache/emel-ref/venv, runs it and writes alloc_scenarios.json:
for each scenario, every tensor's (backend max_buffer_size, chunk index, offset, nbytes) and
each dummy backend's buffer sizes at that point. Regenerate: python parity_fixtures/alloc/make_fixtures.py
"""

import json
import pathlib
import subprocess
import tempfile

HOME = pathlib.Path.home()
SRC = HOME / ".cache/emel-ref/llama_cpp_python-0.3.36/vendor/llama.cpp"
LIB = HOME / ".cache/emel-ref/venv/lib/python3.11/site-packages/llama_cpp/lib"
OUT = pathlib.Path(__file__).with_name("alloc_scenarios.json")

DUMP = r'''
#include <cstdio>
static void dump_graph(ggml_cgraph * graph, const char * fn) {
    printf("{\"test\": \"%s\", \"tensors\": {", fn);
    std::vector<ggml_tensor *> all;
    for (int i = 0; i < graph->n_leafs; ++i) all.push_back(graph->leafs[i]);
    for (int i = 0; i < graph->n_nodes; ++i) all.push_back(graph->nodes[i]);
    std::vector<dummy_backend_context *> ctxs;
    for (size_t k = 0; k < all.size(); ++k) {
        ggml_tensor * t = all[k];
        auto * bctx = (dummy_backend_context *) t->buffer->context;
        if (std::find(ctxs.begin(), ctxs.end(), bctx) == ctxs.end()) ctxs.push_back(bctx);
        int chunk = -1;
        for (size_t b = 0; b < bctx->buffers.size(); ++b) if (bctx->buffers[b] == t->buffer) chunk = (int) b;
        printf("%s\"%s\": [%zu, %d, %zu, %zu]", k ? ", " : "", t->name, bctx->max_buffer_size, chunk,
               (size_t)((uint8_t *) t->data - alloc_base), ggml_nbytes(t));
    }
    printf("}, \"buffers\": {");
    for (size_t c = 0; c < ctxs.size(); ++c) {
        printf("%s\"%zu\": [", c ? ", " : "", ctxs[c]->max_buffer_size);
        for (size_t b = 0; b < ctxs[c]->buffers.size(); ++b)
            printf("%s%zu", b ? ", " : "", ggml_backend_buffer_get_size(ctxs[c]->buffers[b]));
        printf("]");
    }
    printf("}}\n");
}
'''


def main() -> None:
    text = (SRC / "tests/test-alloc.cpp").read_text()
    text = text.replace('"../ggml/src/', '"')
    text = text.replace('#include "ggml-alloc.h"', '#include "ggml-alloc.h"\n#include <cstdint>', 1)
    text = text.replace("static void check_all_allocated(", DUMP + "\nstatic void check_all_allocated(", 1)
    text = text.replace("check_all_allocated(graph);", "check_all_allocated(graph); dump_graph(graph, __func__);")
    text = text.replace('printf("%s ", name);', "").replace('printf("PASSED\\n");', "")
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "tests" / "test-alloc-dump.cpp"
        src.parent.mkdir()
        src.write_text(text)
        exe = pathlib.Path(tmp) / "test-alloc-dump"
        subprocess.run(
            ["g++", "-std=c++17", "-O1", f"-I{SRC}/ggml/include", f"-I{SRC}/ggml/src", str(src), "-o", str(exe),
             f"-L{LIB}", "-lggml-base", "-lggml", f"-Wl,-rpath,{LIB}"],
            check=True,
        )
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    version = (SRC / "ggml/CMakeLists.txt").read_text()
    meta = {
        "source": "llama.cpp tests/test-alloc.cpp (vendored in llama-cpp-python 0.3.36), run against its built libggml",
        "ggml_version_hint": [l.strip() for l in version.splitlines() if "GGML_VERSION_" in l and "set(" in l][:3],
        "format": "tensors: name -> [backend max_buffer_size, chunk index, offset, nbytes]; buffers: max_buffer_size -> chunk sizes",
    }
    OUT.write_text(json.dumps({"meta": meta, "scenarios": records}, indent=1) + "\n")
    print(f"wrote {len(records)} scenarios to {OUT}")


if __name__ == "__main__":
    main()
