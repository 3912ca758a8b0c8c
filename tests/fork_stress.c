/* fork_stress.c - FORKS fork()s (default 200) while THREADS threads (default 4) keep
 * allocating and freeing. Each child frees ten 777-byte blocks and exits. Deadlock in
 * the shim shows as the alarm firing (exit by SIGALRM); prints the parent's pid. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *churn(void *arg)
{
    (void)arg;
    void *keep[64] = {0};
    for (unsigned i = 0; !stop; i++) {
        free(keep[i % 64]);
        keep[i % 64] = malloc(16 + i % 512);
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    pthread_t th[32];
    alarm(120);
    for (int i = 0; i < threads && i < 32; i++)
        pthread_create(&th[i], NULL, churn, NULL);
    int bad = 0;
    for (int k = 0; k < forks; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int j = 0; j < 10; j++) {
                void *volatile p = malloc(777); /* volatile: the pair must not be elided */
                free(p);
            }
            exit(0);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    stop = 1;
    for (int i = 0; i < threads && i < 32; i++)
        pthread_join(th[i], NULL);
    printf("parent %d children-failed %d\n", (int)getpid(), bad);
    return bad ? 1 : 0;
}
