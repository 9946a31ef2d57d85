// A shared library without the plugin entry points (tst_plugin_loader).
extern "C" __attribute__((visibility("default"))) int archlens_something_else(void) { return 1; }
