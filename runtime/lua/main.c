/* lua/main.c: the moonwatch binary hands its arguments to the Lua VM. */
#include "lua/vm.h"

int main(int argc, char **argv) { return mw_vm_main(argc, argv); }
