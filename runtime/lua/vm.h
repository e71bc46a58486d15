/* lua/vm.h: the moonwatch LuaJIT VM, the only way into Lua from the rest of the C core. */
#ifndef MW_LUA_VM_H
#define MW_LUA_VM_H

/* Runs the moonwatch command line: creates the LuaJIT state, finds the Lua
 * modules (the source tree when run from the build tree, the install prefix
 * otherwise), calls moonwatch.cli.main and, when it asks for it, runs the
 * libev default loop until moonwatch.core.stop(). Returns the exit code. */
int mw_vm_main(int argc, char **argv);

#endif
