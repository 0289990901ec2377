// Package kernel tests iked's kernel data plane (backend: xfrm) live, in a
// QEMU guest booted with Debian 12's own kernel (internal/vmtest): ESP
// carried by the kernel between iked daemons in network namespaces, and
// against strongSwan's charon with kernel-netlink and libreswan's pluto,
// which install their SAs through XFRM too. The package holds only tests;
// TestKernelDataPlane boots one guest for all of them.
package kernel
