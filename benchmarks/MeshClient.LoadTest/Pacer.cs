using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MeshClient.LoadTest;

/// <summary>
/// Sleeps a dedicated sender thread until an absolute Stopwatch timestamp. On Linux (where Stopwatch is
/// CLOCK_MONOTONIC in nanoseconds) it uses clock_nanosleep(TIMER_ABSTIME) with 1 ns timer slack, as the measured
/// anchors did; elsewhere it sleeps coarsely and spins the last stretch.
/// </summary>
internal static class Pacer
{
    private static readonly bool Precise = OperatingSystem.IsLinux() && Stopwatch.Frequency == 1_000_000_000;

    /// <summary>Call once on the sender thread: timer slack is per thread.</summary>
    public static void PrepareThread()
    {
        if (Precise)
        {
            _ = NativeMethods.prctl(NativeMethods.PrSetTimerSlack, 1, 0, 0, 0);
        }
    }

    public static void SleepUntil(long timestamp)
    {
        if (Precise)
        {
            var target = new NativeMethods.Timespec { Seconds = timestamp / 1_000_000_000, Nanoseconds = timestamp % 1_000_000_000 };
            while (Stopwatch.GetTimestamp() < timestamp)
            {
                // Returns EINTR on a signal: just go round again.
                _ = NativeMethods.clock_nanosleep(NativeMethods.ClockMonotonic, NativeMethods.TimerAbsTime, ref target, IntPtr.Zero);
            }

            return;
        }

        while (true)
        {
            var remaining = timestamp - Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return;
            }

            if (remaining > Stopwatch.Frequency / 500)
            {
                Thread.Sleep(1);
            }
            else
            {
                Thread.SpinWait(20);
            }
        }
    }

    private static class NativeMethods
    {
        public const int ClockMonotonic = 1;
        public const int TimerAbsTime = 1;
        public const int PrSetTimerSlack = 29;

        [StructLayout(LayoutKind.Sequential)]
        public struct Timespec
        {
            public long Seconds;
            public long Nanoseconds;
        }

        [DllImport("libc", SetLastError = false)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
#pragma warning disable SYSLIB1054 // A blittable signature: DllImport needs no unsafe code here.
        public static extern int clock_nanosleep(int clockId, int flags, ref Timespec request, IntPtr remain);

        [DllImport("libc", SetLastError = false)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
#pragma warning restore SYSLIB1054
    }
}
