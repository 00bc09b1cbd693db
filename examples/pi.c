/* pi by numerical integration, the cluster's first parallel program.
 *
 * pi = integral from 0 to 1 of 4 / (1 + x^2) dx, by the midpoint rule over N intervals
 * (default 10 million, or the first argument). Every rank sums every size-th interval,
 * says on which host it runs, and rank 0 prints the reduced sum.
 *
 *   mpicc -O2 -o pi pi.c && mpirun ./pi
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank, size, length;
    char host[MPI_MAX_PROCESSOR_NAME];
    long n = argc > 1 ? atol(argv[1]) : 10000000L;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &length);

    double h = 1.0 / (double)n, sum = 0.0;
    for (long i = rank; i < n; i += size) {
        double x = h * ((double)i + 0.5);
        sum += 4.0 / (1.0 + x * x);
    }
    double mine = h * sum, pi = 0.0;
    printf("rank %d of %d on %s\n", rank, size, host);
    fflush(stdout);
    MPI_Reduce(&mine, &pi, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("pi = %.12f (error %.1e) from %d ranks, %ld intervals\n",
               pi, fabs(pi - M_PI), size, n);
    MPI_Finalize();
    return 0;
}
