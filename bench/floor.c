/*
 * The C floor: a tcp_table server on 127.0.0.1 that answers every request line with
 * "500 NO%20RESULT" and does nothing else, one thread per connection. What it reaches is what the
 * loopback allows this client on this machine, the ceiling of any server here.
 *
 *   floor PORT        (0: a free port)
 *
 * Prints "port=N" once listening. The replies to the lines of one read go out in one write, as the
 * Deno floor (bench/floor_server.ts) sends them.
 *
 * Built by the bench: cc -O2 -pthread -o bench/build/floor bench/floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPLY "500 NO%20RESULT\n"
#define REPLY_LENGTH (sizeof REPLY - 1)
#define READ_SIZE 16384

/* Replies for a whole read of request lines: a request takes at least 2 bytes ("x\n"). */
static char replies[(READ_SIZE / 2) * REPLY_LENGTH];

static void die(const char *what) {
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *serve(void *argument) {
	int fd = (int)(long)argument;
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	char buffer[READ_SIZE];
	for (;;) {
		ssize_t got = read(fd, buffer, sizeof buffer);
		if (got < 0 && errno == EINTR) continue;
		if (got <= 0) break;
		size_t lines = 0;
		for (ssize_t i = 0; i < got; i++) lines += buffer[i] == '\n';
		size_t left = lines * REPLY_LENGTH;
		const char *next = replies;
		while (left > 0) {
			ssize_t written = write(fd, next, left);
			if (written < 0 && errno == EINTR) continue;
			if (written <= 0) goto done;
			next += written;
			left -= (size_t)written;
		}
	}
done:
	close(fd);
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: floor PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a client that goes away ends its connection, not the server */
	for (size_t i = 0; i < sizeof replies / REPLY_LENGTH; i++) {
		memcpy(replies + i * REPLY_LENGTH, REPLY, REPLY_LENGTH);
	}
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0) die("socket");
	int on = 1;
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	struct sockaddr_in address = {0};
	address.sin_family = AF_INET;
	address.sin_port = htons((unsigned short)atoi(argv[1]));
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t length = sizeof address;
	if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
	if (listen(listener, 512) < 0) die("listen");
	if (getsockname(listener, (struct sockaddr *)&address, &length) < 0) die("getsockname");
	printf("port=%d\n", ntohs(address.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			die("accept");
		}
		pthread_t thread;
		if (pthread_create(&thread, NULL, serve, (void *)(long)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(thread);
	}
}
