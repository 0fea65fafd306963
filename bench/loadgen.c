/*
 * A closed-loop tcp_table client shaped like Postfix: each of CONNS connections sends
 * "get KEY\n", waits for the reply line, then sends the next request. One thread per connection,
 * so the client adds as little as it can to what it measures.
 *
 *   loadgen HOST PORT CONNS KEYFILE SECONDS
 *
 * KEYFILE holds one key per line, sent as written. With SECONDS > 0 connection c cycles through
 * the keys from index c * 7919 for that long; with SECONDS = 0 the connections share one pass
 * over the keys, each key sent once, and the time is that of the pass.
 *
 * Prints one line (the format bench/loadgen.ts parses and prints):
 *   conns=8 lookups=N secs=S rate=R/s p50=Aus p99=Bus max=Cus 200=N 400=N 500=N other=N errors=N
 * Latencies are per request, write to reply line, in microseconds; pQ is the element at
 * floor(n * Q) of the sorted latencies.
 *
 * Built by the bench: cc -O2 -pthread -o bench/build/loadgen bench/loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The requests, "get KEY\n" each, one after another in one buffer. */
static char *request_bytes;
static size_t *request_start; /* request i is [request_start[i], request_start[i + 1]) */
static size_t request_count;

static struct sockaddr_in server;
static int one_pass;
static atomic_size_t next_in_pass;
static atomic_int stopping;

struct connection {
	pthread_t thread;
	size_t first_key;
	double *latencies_us;
	size_t latency_count, latency_capacity;
	long code200, code400, code500, code_other, errors;
};

static double seconds_now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *grow(void *data, size_t *capacity, size_t element) {
	*capacity = *capacity == 0 ? 4096 : *capacity * 2;
	void *grown = realloc(data, *capacity * element);
	if (grown == NULL) die("out of memory");
	return grown;
}

static void read_keys(const char *path) {
	FILE *file = fopen(path, "r");
	if (file == NULL) die(path);
	size_t bytes_capacity = 0, bytes_used = 0, starts_capacity = 0;
	char *line = NULL;
	size_t line_capacity = 0;
	ssize_t length;
	while ((length = getline(&line, &line_capacity, file)) >= 0) {
		while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) length--;
		if (length == 0) continue;
		size_t needed = bytes_used + (size_t)length + 5;
		while (bytes_capacity < needed) request_bytes = grow(request_bytes, &bytes_capacity, 1);
		if (request_count + 2 > starts_capacity) {
			request_start = grow(request_start, &starts_capacity, sizeof *request_start);
		}
		request_start[request_count++] = bytes_used;
		memcpy(request_bytes + bytes_used, "get ", 4);
		memcpy(request_bytes + bytes_used + 4, line, (size_t)length);
		request_bytes[bytes_used + 4 + (size_t)length] = '\n';
		bytes_used = needed;
	}
	free(line);
	fclose(file);
	if (request_count == 0) {
		fprintf(stderr, "loadgen: %s holds no key\n", path);
		exit(2);
	}
	request_start[request_count] = bytes_used;
}

static int write_all(int fd, const char *bytes, size_t length) {
	while (length > 0) {
		ssize_t written = write(fd, bytes, length);
		if (written < 0 && errno == EINTR) continue;
		if (written <= 0) return -1;
		bytes += written;
		length -= (size_t)written;
	}
	return 0;
}

static void count_reply(struct connection *c, const char *line, size_t length) {
	if (length >= 3 && memcmp(line, "200", 3) == 0) c->code200++;
	else if (length >= 3 && memcmp(line, "400", 3) == 0) c->code400++;
	else if (length >= 3 && memcmp(line, "500", 3) == 0) c->code500++;
	else c->code_other++;
}

static void *run_connection(void *argument) {
	struct connection *c = argument;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
		c->errors++;
		if (fd >= 0) close(fd);
		return NULL;
	}
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	char buffer[8192];
	size_t buffered = 0;
	size_t key = c->first_key;
	while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
		size_t index;
		if (one_pass) {
			index = atomic_fetch_add(&next_in_pass, 1);
			if (index >= request_count) break;
		} else {
			index = key++ % request_count;
		}
		double started = seconds_now();
		const char *request = request_bytes + request_start[index];
		if (write_all(fd, request, request_start[index + 1] - request_start[index]) < 0) {
			c->errors++;
			break;
		}
		char *newline;
		while ((newline = memchr(buffer, '\n', buffered)) == NULL) {
			if (buffered == sizeof buffer) buffered = 0; /* a line longer than any reply: drop it */
			ssize_t got = read(fd, buffer + buffered, sizeof buffer - buffered);
			if (got < 0 && errno == EINTR) continue;
			if (got <= 0) {
				c->errors++;
				goto done;
			}
			buffered += (size_t)got;
		}
		double latency_us = (seconds_now() - started) * 1e6;
		size_t line_length = (size_t)(newline - buffer);
		count_reply(c, buffer, line_length);
		buffered -= line_length + 1;
		memmove(buffer, newline + 1, buffered);
		if (c->latency_count == c->latency_capacity) {
			c->latencies_us = grow(c->latencies_us, &c->latency_capacity, sizeof(double));
		}
		c->latencies_us[c->latency_count++] = latency_us;
	}
done:
	close(fd);
	return NULL;
}

static int by_value(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: loadgen HOST PORT CONNS KEYFILE SECONDS\n");
		return 2;
	}
	int conns = atoi(argv[3]);
	double seconds = atof(argv[5]);
	server.sin_family = AF_INET;
	server.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1 || conns < 1 || conns > 4096) {
		fprintf(stderr, "loadgen: HOST must be an IPv4 address and CONNS from 1 to 4096\n");
		return 2;
	}
	read_keys(argv[4]);
	one_pass = seconds <= 0;

	struct connection *connections = calloc((size_t)conns, sizeof *connections);
	if (connections == NULL) die("out of memory");
	double started = seconds_now();
	for (int i = 0; i < conns; i++) {
		connections[i].first_key = (size_t)i * 7919;
		errno = pthread_create(&connections[i].thread, NULL, run_connection, &connections[i]);
		if (errno != 0) die("pthread_create");
	}
	if (!one_pass) {
		struct timespec wait = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
		while (nanosleep(&wait, &wait) < 0 && errno == EINTR) {
		}
		atomic_store(&stopping, 1);
	}
	for (int i = 0; i < conns; i++) pthread_join(connections[i].thread, NULL);
	double elapsed = seconds_now() - started;

	size_t lookups = 0;
	long code200 = 0, code400 = 0, code500 = 0, code_other = 0, errors = 0;
	for (int i = 0; i < conns; i++) lookups += connections[i].latency_count;
	double *all = malloc((lookups + 1) * sizeof(double));
	if (all == NULL) die("out of memory");
	size_t filled = 0;
	for (int i = 0; i < conns; i++) {
		struct connection *c = &connections[i];
		if (c->latency_count > 0) memcpy(all + filled, c->latencies_us, c->latency_count * sizeof(double));
		filled += c->latency_count;
		code200 += c->code200;
		code400 += c->code400;
		code500 += c->code500;
		code_other += c->code_other;
		errors += c->errors;
	}
	qsort(all, lookups, sizeof(double), by_value);
	double p50 = lookups > 0 ? all[lookups / 2] : 0;
	double p99 = lookups > 0 ? all[(size_t)((double)lookups * 0.99)] : 0;
	double max = lookups > 0 ? all[lookups - 1] : 0;
	printf("conns=%d lookups=%zu secs=%.2f rate=%.0f/s p50=%.0fus p99=%.0fus max=%.0fus "
	       "200=%ld 400=%ld 500=%ld other=%ld errors=%ld\n",
	       conns, lookups, elapsed, (double)lookups / elapsed, p50, p99, max, code200, code400,
	       code500, code_other, errors);
	return 0;
}
