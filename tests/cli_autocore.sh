#!/bin/sh
# OpenBLAS kernel choice: lathe re-selects a core only when OpenBLAS fell back
# to a generic one, never overrides the user, and can be turned off.
# LATHE_BLAS_ASSUME_CORE makes lathe believe OpenBLAS chose that core, so the
# re-exec path is exercised on CPUs OpenBLAS already recognises.
LATHE=${LATHE:-$(dirname "$0")/../lathe}
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

out=$("$LATHE" --version)
echo "$out" | grep -q "OpenBLAS core: " ; ok $? "--version names the OpenBLAS core"

if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
	out=$(env -u OPENBLAS_CORETYPE LATHE_BLAS_ASSUME_CORE=Prescott "$LATHE" --version)
	echo "$out" | grep -q "chosen by auto"; ok $? "generic core on an AVX2 CPU is replaced ($out)"
	echo "$out" | grep -Eq "core: (Haswell|Zen|SkylakeX) "; ok $? "replacement fits the CPU"
else
	n=$((n + 2)); echo "ok $((n - 1)) # SKIP no AVX2+FMA"; echo "ok $n # SKIP no AVX2+FMA"
fi
out=$(env -u OPENBLAS_CORETYPE LATHE_BLAS_ASSUME_CORE=Prescott LATHE_BLAS_AUTOCORE=0 "$LATHE" --version)
echo "$out" | grep -q "chosen by openblas"; ok $? "LATHE_BLAS_AUTOCORE=0 opts out"
out=$(OPENBLAS_CORETYPE=Prescott LATHE_BLAS_ASSUME_CORE=Prescott "$LATHE" --version)
echo "$out" | grep -q "core: Prescott (chosen by user"; ok $? "a user's OPENBLAS_CORETYPE is never overridden"
out=$(env -u OPENBLAS_CORETYPE LATHE_BLAS_ASSUME_CORE=Haswell "$LATHE" --version)
echo "$out" | grep -q "chosen by auto"; [ $? -ne 0 ]; ok $? "a recognised core is kept"
echo "1..$n"
