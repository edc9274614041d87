package kernel

// taskFS is the filesystem state of a task (FD table, root/cwd/umask).
// Owned by the VFS work; the kernel only calls the functions declared here.
type taskFS struct{}

// kernelFS is the kernel-wide filesystem state (the VFS, mount namespace).
type kernelFS struct{}
