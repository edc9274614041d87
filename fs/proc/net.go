package proc

import (
	"github.com/veil-sandbox/veil/sentry/vfs"
)

// /proc/net: the tables ip, netstat and ss read. The sandbox has no
// network stack yet, so every table has its header and no rows.
var netTables = []struct{ name, header string }{
	{"dev", "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"},
	{"tcp", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"},
	{"tcp6", "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"},
	{"udp", "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"},
	{"udp6", "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"},
	{"unix", "Num       RefCount Protocol Flags    Type St Inode Path\n"},
	{"raw", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"},
	{"route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n"},
	{"if_inet6", ""},
	{"packet", "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n"},
}

// netDir is /proc/PID/net (and /proc/net through the self link).
func (fs *Filesystem) netDir(n node) vfs.Inode {
	var es []entry
	for i, t := range netTables {
		es = append(es, entry{t.name, constFile(inoNetBase+uint64(i), t.header)})
	}
	return &dirInode{node: n, list: fixedEntries(es)}
}
