// Entry points for the Python tests (test/clib.py): whole-model calls on an opaque handle.
int capi_version(void) { return 1; }
