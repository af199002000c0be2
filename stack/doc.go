// Package stack is the engine of tund and its public API. It owns every
// goroutine, lock and clock: it reads IP packets (IPv4 and IPv6) from a
// tun.Device, validates them with the network layer of their family
// (package ip's Network), hands each TCP segment to its
// connection's tcp.Conn under that connection's lock, and writes what the
// core emits straight back to the device. It answers pings, resets
// segments that reach no one, runs listeners (SYN queue plus accept queue
// under one backlog), allocates ephemeral ports, and drives each
// connection's timers with one runtime timer.
//
// Applications see net.Listener and net.Conn: Stack.Listen and
// Stack.DialContext. Conn also has CloseWrite, like *net.TCPConn.
// Stack.Shutdown closes every connection gracefully; Stack.Close resets
// them. Stack.Done and Stack.Err report the stack's end, also when its
// device fails, which wakes every blocked call with the device's error.
//
// The hot path allocates nothing: one reader goroutine parses into a
// reused buffer, each connection owns its output buffer, and payload is
// copied once into the receive ring and once out to the reader.
package stack
