// keep_dso.c - LD_PRELOADed in the sanitizer test pass (tools/run-tests): dlclose() does
// nothing, so the Open MPI components that MPI_Finalize unloads stay mapped and
// LeakSanitizer can name the module of their allocations (tests/lsan.supp suppresses those
// third-party modules; an unloaded one shows as "<unknown module>" and matches nothing).
int dlclose(void *handle);
int dlclose(void *handle) {
    (void)handle;
    return 0;
}
