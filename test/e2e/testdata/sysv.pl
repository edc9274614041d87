# sysv.pl: Perl's own System V IPC modules (IPC::SharedMem, IPC::Msg,
# IPC::Semaphore) used by four forked workers: a semaphore with SEM_UNDO
# guards a counter in a shared memory segment, each worker reports on a
# message queue with its own type, a second semaphore counts the finished
# ones. The output names no IDs or PIDs, so it is the same everywhere.
use strict;
use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_NOWAIT S_IRUSR S_IWUSR SEM_UNDO);
use IPC::Msg;
use IPC::Semaphore;
use IPC::SharedMem;

$| = 1;
my $mode = S_IRUSR | S_IWUSR;
my $shm = IPC::SharedMem->new(IPC_PRIVATE, 4096, $mode) or die "shmget: $!";
my $q   = IPC::Msg->new(IPC_PRIVATE, $mode)            or die "msgget: $!";
my $sem = IPC::Semaphore->new(IPC_PRIVATE, 2, $mode)    or die "semget: $!";
$sem->setall(1, 0) or die "setall: $!";
$shm->write(sprintf("%010d", 0), 0, 10) or die "shmwrite: $!";

my @kids;
for my $i (1 .. 4) {
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		for (1 .. 50) {
			$sem->op(0, -1, SEM_UNDO) or die "lock: $!";
			my $v = $shm->read(0, 10);
			$shm->write(sprintf("%010d", $v + 1), 0, 10);
			$sem->op(0, 1, SEM_UNDO) or die "unlock: $!";
		}
		$q->snd($i, "worker $i done") or die "msgsnd: $!";
		$sem->op(1, 1, 0) or die "count: $!";
		exit 0;
	}
	push @kids, $pid;
}
$sem->op(1, -4, 0) or die "wait: $!";
for my $i (reverse 1 .. 4) {
	my $buf;
	$q->rcv($buf, 100, $i) or die "msgrcv: $!";
	print "$buf\n";
}
waitpid($_, 0) for @kids;
print "counter ", $shm->read(0, 10) + 0, "\n";
print "semaphores ", join(",", $sem->getall), "\n";
print "queued ", $q->stat->qnum, "\n";
my $st = $shm->stat;
print "segment ", $st->segsz, " bytes, ", $st->nattch, " attached\n";
my $buf;
print "empty queue: ", (defined $q->rcv($buf, 10, 0, IPC_NOWAIT) ? "a message" : $!{ENOMSG} ? "ENOMSG" : "error $!"), "\n";
$shm->remove or die;
$q->remove   or die;
$sem->remove or die;
print "removed\n";
