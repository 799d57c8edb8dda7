#!/bin/sh
# lathe info: tables and --json for the fixture models (tensors, dtypes,
# shapes, parameters, zeros, bytes, graph, MACs), weights-only files, IDX
# files, and the share of zeros in files built here byte by byte.
# Expected numbers are worked out independently (see the comments), not
# copied from lathe's output.

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/lib.sh"

F=$FIXTURES

# row FILE NAME FIELDS...: the table row whose first field is NAME has, from
# its second field on, exactly FIELDS (joined by single spaces; so a shape
# "[300, 784]" is two fields "[300," "784]").
row_is() {
	_r_desc=$1 _r_file=$2 _r_name=$3
	shift 3
	_r_got=$(awk -v n="$_r_name" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }' "$_r_file")
	is "$_r_desc" "$_r_got" "$*"
}

# ---- mlp (LeNet-300-100), text ----
# fc1 784->300, fc2 300->100, fc3 100->10, F32:
#   params 235,200 + 300 + 30,000 + 100 + 1,000 + 10 = 266,610
#   bytes  4 x 266,610 = 1,066,440
#   MACs   784*300 + 300*100 + 100*10 = 266,200
check_run "info mlp: exit 0, nothing on stderr" "$LATHE" info "$F/mlp.safetensors"
cp "$T/out" "$T/mlp.txt"
contains "info mlp: summary line" "$T/mlp.txt" "safetensors, 6 tensors, 266,610 parameters"
contains "info mlp: file size in bytes" "$T/mlp.txt" "(1,066,440 bytes)"
row_is "info mlp: fc1.weight row" "$T/mlp.txt" fc1.weight F32 "[300," "784]" 235,200 0.00% 940,800
row_is "info mlp: fc1.bias row" "$T/mlp.txt" fc1.bias F32 "[300]" 300 0.00% 1,200
row_is "info mlp: fc2.weight row" "$T/mlp.txt" fc2.weight F32 "[100," "300]" 30,000 0.00% 120,000
row_is "info mlp: fc2.bias row" "$T/mlp.txt" fc2.bias F32 "[100]" 100 0.00% 400
row_is "info mlp: fc3.weight row" "$T/mlp.txt" fc3.weight F32 "[10," "100]" 1,000 0.00% 4,000
row_is "info mlp: fc3.bias row" "$T/mlp.txt" fc3.bias F32 "[10]" 10 0.00% 40
row_is "info mlp: total row" "$T/mlp.txt" total 266,610 0.00% 1,066,440
contains "info mlp: graph line with MACs" "$T/mlp.txt" "graph: 5 layers, input [784], 266,200 MACs per sample"
row_is "info mlp: layer fc1 (params incl. bias, MACs)" "$T/mlp.txt" fc1 linear "[300]" 235,500 235,200
row_is "info mlp: layer fc2" "$T/mlp.txt" fc2 linear "[100]" 30,100 30,000
row_is "info mlp: layer fc3" "$T/mlp.txt" fc3 linear "[10]" 1,010 1,000
contains "info mlp: metadata lists lathe.arch" "$T/mlp.txt" "lathe.arch:"

# ---- mlp, --json ----
check_run "info --json mlp: exit 0, nothing on stderr" "$LATHE" info --json "$F/mlp.safetensors"
cp "$T/out" "$T/mlp.json"
check "info --json mlp: output is valid JSON" json_valid "$T/mlp.json"
is "info --json mlp: kind" "$(json_get kind "$T/mlp.json")" model
is "info --json mlp: totals.tensors" "$(json_get tensors "$T/mlp.json" totals)" 6
is "info --json mlp: totals.params" "$(json_get params "$T/mlp.json" totals)" 266610
is "info --json mlp: totals.zeros" "$(json_get zeros "$T/mlp.json" totals)" 0
is "info --json mlp: totals.bytes" "$(json_get bytes "$T/mlp.json" totals)" 1066440
is "info --json mlp: graph.macs" "$(json_get macs "$T/mlp.json" graph)" 266200
json_compact "$T/mlp.json" >"$T/mlp.cjson"
contains "info --json mlp: fc1.weight entry" "$T/mlp.cjson" \
	'{"name":"fc1.weight","dtype":"F32","shape":[300,784],"params":235200,"zeros":0,"bytes":940800}'
contains "info --json mlp: fc3.bias entry" "$T/mlp.cjson" \
	'{"name":"fc3.bias","dtype":"F32","shape":[10],"params":10,"zeros":0,"bytes":40}'
contains "info --json mlp: graph input" "$T/mlp.cjson" '"input":[784]'
contains "info --json mlp: layer fc2" "$T/mlp.cjson" \
	'{"name":"fc2","op":"linear","output":[100],"params":30100,"macs":30000}'
text_params=$(nocommas "$(awk '$1 == "total" { print $2 }' "$T/mlp.txt")")
text_bytes=$(nocommas "$(awk '$1 == "total" { print $4 }' "$T/mlp.txt")")
is "info mlp: text and JSON totals agree (params, bytes)" \
	"$text_params $text_bytes" \
	"$(json_get params "$T/mlp.json" totals) $(json_get bytes "$T/mlp.json" totals)"

# ---- cnn (LeNet-5) graph ----
# conv1 1->20 5x5 on 28x28: 20*24*24*25 = 288,000; pool 2 -> 12x12
# conv2 20->50 5x5: 50*8*8*500 = 1,600,000; pool 2 -> 4x4, flatten 800
# fc1 800*500 = 400,000; fc2 500*10 = 5,000; total 2,293,000
# params 520 + 25,050 + 400,500 + 5,010 = 431,080
check_run "info cnn: exit 0" "$LATHE" info "$F/cnn.safetensors"
cp "$T/out" "$T/cnn.txt"
contains "info cnn: 431,080 parameters" "$T/cnn.txt" "8 tensors, 431,080 parameters"
contains "info cnn: graph line, 2,293,000 MACs" "$T/cnn.txt" \
	"graph: 10 layers, input [1, 28, 28], 2,293,000 MACs per sample"
row_is "info cnn: layer conv1" "$T/cnn.txt" conv1 conv2d "[20," "24," "24]" 520 288,000
row_is "info cnn: layer conv2" "$T/cnn.txt" conv2 conv2d "[50," "8," "8]" 25,050 1,600,000
row_is "info cnn: layer fc1" "$T/cnn.txt" fc1 linear "[500]" 400,500 400,000

# ---- allops, allops_nsq: shape inference of every op ----
# allops: conv 1->8 3x3 s2 p1: 8x14x14, 8*196*9 = 14,112; avgpool -> 7x7;
# conv 8->16 3x3 p1: 16*49*72 = 56,448; maxpool 3 s2 p1 -> 4x4; fc 256->64
# 16,384; fc 64->10 640; total 87,584.
run "$LATHE" info "$F/allops.safetensors"
contains "info allops: 87,584 MACs" "$T/out" "graph: 14 layers, input [1, 28, 28], 87,584 MACs per sample"
row_is "info allops: maxpool2d 3x3 s2 p1 output" "$T/out" maxpool2d6 maxpool2d "[16," "4," "4]" 0 0
# allops_nsq: conv [5,3] s[2,1] p[2,1]: 6x14x28, 6*392*15 = 35,280;
# maxpool [2,4] (stride = kernel): 6x7x7; avgpool 3 s2 p1: 6x4x4;
# conv 6->10 k2 no bias: 10x3x3, 10*9*24 = 2,160, 240 params; maxpool 2 p1
# (stride 2): 10x2x2; fc 40->10: 400; total 37,840.
run "$LATHE" info "$F/allops_nsq.safetensors"
cp "$T/out" "$T/nsq.txt"
contains "info allops_nsq: 37,840 MACs" "$T/nsq.txt" "37,840 MACs per sample"
row_is "info allops_nsq: non-square conv c1" "$T/nsq.txt" c1 conv2d "[6," "14," "28]" 96 35,280
row_is "info allops_nsq: maxpool [2,4] without stride" "$T/nsq.txt" maxpool2d3 maxpool2d "[6," "7," "7]" 0 0
row_is "info allops_nsq: avgpool 3 s2 p1" "$T/nsq.txt" avgpool2d5 avgpool2d "[6," "4," "4]" 0 0
row_is "info allops_nsq: conv c2 without bias" "$T/nsq.txt" c2 conv2d "[10," "3," "3]" 240 2,160
row_is "info allops_nsq: maxpool 2 p1 without stride" "$T/nsq.txt" maxpool2d8 maxpool2d "[10," "2," "2]" 0 0

# ---- weights-only files ----
check_run "info mlp_ref (weights-only): exit 0" "$LATHE" info "$F/mlp_ref.safetensors"
contains "info mlp_ref: says graph: none" "$T/out" "graph: none"
contains "info mlp_ref: says weights-only" "$T/out" "weights-only"
row_is "info mlp_ref: logits row" "$T/out" logits F32 "[256," "10]" 2,560 0.00% 10,240
check_run "info --json mlp_ref: exit 0" "$LATHE" info --json "$F/mlp_ref.safetensors"
check "info --json mlp_ref: valid JSON" json_valid "$T/out"
is "info --json mlp_ref: graph is null" "$(json_get graph "$T/out")" null
is "info --json mlp_ref: metadata accuracy" "$(json_get accuracy "$T/out" metadata)" 0.859375

# ---- dtypes.safetensors: one tensor per dtype ----
# Zeros by value (fixtures/README.md): f64 holds 0.0 and 1e-300 -- only one
# zero, 1e-300 is not zero even though it underflows in F32; f32 0.0, -0.0;
# f16 0.0, -0.0; bf16, the ints, u8 one 0 each; bool two false.
check_run "info dtypes: exit 0" "$LATHE" info "$F/dtypes.safetensors"
cp "$T/out" "$T/dtypes.txt"
contains "info dtypes: summary" "$T/dtypes.txt" "15 tensors, 89 parameters"
contains "info dtypes: weights-only" "$T/dtypes.txt" "graph: none"
for spec in "f64 F64 [8]" "f32 F32 [9]" "f16 F16 [13]" "bf16 BF16 [10]" \
	"i64 I64 [7]" "i32 I32 [6]" "i16 I16 [6]" "i8 I8 [6]" "u8 U8 [6]" \
	"bool BOOL [5]" "f32_2x3 F32 [2, 3]" "i8_2x3 I8 [2, 3]" "scalar F32 []" \
	"empty F32 [0]" "empty_2x0 I32 [2, 0]"; do
	set -f; set -- $spec; set +f
	name=$1
	shift
	got=$(awk -v n="$name" '$1 == n { s = $2; for (i = 3; i <= NF && $i !~ /^[0-9,]+$/; i++) s = s " " $i; print s; exit }' "$T/dtypes.txt")
	is "info dtypes: $name has dtype and shape $*" "$got" "$*"
done
check_run "info --json dtypes: exit 0" "$LATHE" info --json "$F/dtypes.safetensors"
cp "$T/out" "$T/dtypes.json"
check "info --json dtypes: valid JSON" json_valid "$T/dtypes.json"
json_compact "$T/dtypes.json" >"$T/dtypes.cjson"
for e in \
	'"f64","dtype":"F64","shape":[8],"params":8,"zeros":1,"bytes":64}' \
	'"f32","dtype":"F32","shape":[9],"params":9,"zeros":2,"bytes":36}' \
	'"f16","dtype":"F16","shape":[13],"params":13,"zeros":2,"bytes":26}' \
	'"bf16","dtype":"BF16","shape":[10],"params":10,"zeros":1,"bytes":20}' \
	'"i64","dtype":"I64","shape":[7],"params":7,"zeros":1,"bytes":56}' \
	'"i32","dtype":"I32","shape":[6],"params":6,"zeros":1,"bytes":24}' \
	'"i16","dtype":"I16","shape":[6],"params":6,"zeros":1,"bytes":12}' \
	'"i8","dtype":"I8","shape":[6],"params":6,"zeros":1,"bytes":6}' \
	'"u8","dtype":"U8","shape":[6],"params":6,"zeros":1,"bytes":6}' \
	'"bool","dtype":"BOOL","shape":[5],"params":5,"zeros":2,"bytes":5}' \
	'"scalar","dtype":"F32","shape":[],"params":1,"zeros":0,"bytes":4}' \
	'"empty","dtype":"F32","shape":[0],"params":0,"zeros":0,"bytes":0}' \
	'"empty_2x0","dtype":"I32","shape":[2,0],"params":0,"zeros":0,"bytes":0}'; do
	contains "info --json dtypes: ${e%%,*} entry (dtype, shape, params, zeros, bytes)" \
		"$T/dtypes.cjson" "{\"name\":$e"
done
is "info --json dtypes: totals (tensors params zeros bytes)" \
	"$(json_get tensors "$T/dtypes.json" totals) $(json_get params "$T/dtypes.json" totals) $(json_get zeros "$T/dtypes.json" totals) $(json_get bytes "$T/dtypes.json" totals)" \
	"15 89 13 289"

# ---- F16 and BF16 models ----
for m in mlp_f16:F16 mlp_bf16:BF16; do
	name=${m%:*} dt=${m#*:}
	check_run "info $name: exit 0" "$LATHE" info "$F/$name.safetensors"
	n=$(awk -v d="$dt" '$1 ~ /^fc[123]\.(weight|bias)$/ && $2 == d' "$T/out" | wc -l | tr -d ' ')
	is "info $name: all 6 tensors are $dt" "$n" 6
	# 2 bytes x 266,610 = 533,220
	row_is "info $name: total is 533,220 bytes" "$T/out" total 266,610 0.00% 533,220
done

# ---- zeros in a file built byte by byte ----
# z_f32  F32 [2,4]: 0, 1, -0, 0, NaN, 0, 0, 3     -> 5 zeros (NaN is not 0)
# z_u8   U8 [4]:    0, 0, 0, 7                    -> 3
# z_i64  I64 [2]:   0, 1                          -> 1
# z_bf16 BF16 [2]:  -0, 1.0                       -> 1
# z_f64  F64 [3]:   1e-300, 0, 2^-1074            -> 1 (tiny is not zero)
{
	bytes 0 0 0 0  0 0 128 63  0 0 0 128  0 0 0 0  0 0 192 127  0 0 0 0  0 0 0 0  0 0 64 64
	bytes 0 0 0 7
	bytes 0 0 0 0 0 0 0 0  1 0 0 0 0 0 0 0
	bytes 0 128  128 63
	bytes 89 243 248 194 31 110 165 1  0 0 0 0 0 0 0 0  1 0 0 0 0 0 0 0
} >"$T/zeros.data"
write_safetensors "$T/zeros.safetensors" \
	'{"z_f32":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]},"z_u8":{"dtype":"U8","shape":[4],"data_offsets":[32,36]},"z_i64":{"dtype":"I64","shape":[2],"data_offsets":[36,52]},"z_bf16":{"dtype":"BF16","shape":[2],"data_offsets":[52,56]},"z_f64":{"dtype":"F64","shape":[3],"data_offsets":[56,80]}}' \
	"$T/zeros.data"
check_run "info on a hand-made file: exit 0" "$LATHE" info "$T/zeros.safetensors"
cp "$T/out" "$T/zeros.txt"
row_is "zeros: F32 with -0 and NaN: 62.50%" "$T/zeros.txt" z_f32 F32 "[2," "4]" 8 62.50% 32
row_is "zeros: U8: 75.00%" "$T/zeros.txt" z_u8 U8 "[4]" 4 75.00% 4
row_is "zeros: I64: 50.00%" "$T/zeros.txt" z_i64 I64 "[2]" 2 50.00% 16
row_is "zeros: BF16 -0: 50.00%" "$T/zeros.txt" z_bf16 BF16 "[2]" 2 50.00% 4
row_is "zeros: F64 1e-300 and 2^-1074 are not zero: 33.33%" "$T/zeros.txt" z_f64 F64 "[3]" 3 33.33% 24
# After casting to F16 the F64 tiny values do become 0 (3 zeros); the F32
# tensor keeps its 5; integers are kept as they are.
run "$LATHE" convert "$T/zeros.safetensors" -o "$T/zeros16.safetensors" --dtype f16
is "zeros: convert --dtype f16 exits 0" "$rc" 0
check_run "zeros: info of the F16 copy" "$LATHE" info "$T/zeros16.safetensors"
row_is "zeros: F32 -> F16 keeps 5 zeros" "$T/out" z_f32 F16 "[2," "4]" 8 62.50% 16
row_is "zeros: F64 -> F16 flushes 1e-300 and 2^-1074 to 0" "$T/out" z_f64 F16 "[3]" 3 100.00% 6
row_is "zeros: U8 kept by --dtype f16" "$T/out" z_u8 U8 "[4]" 4 75.00% 4
row_is "zeros: I64 kept by --dtype f16" "$T/out" z_i64 I64 "[2]" 2 50.00% 16

# ---- IDX files ----
check_run "info IDX images (gzip): exit 0" "$LATHE" info "$F/slice-images-idx3-ubyte.gz"
contains "info IDX images: u8, dims [256, 28, 28], 256 items" "$T/out" \
	"IDX (gzip), element type u8, dims [256, 28, 28], 256 items"
check_run "info --json IDX images: exit 0" "$LATHE" info --json "$F/slice-images-idx3-ubyte.gz"
cp "$T/out" "$T/idx.json"
check "info --json IDX images: valid JSON" json_valid "$T/idx.json"
is "info --json IDX images: kind type items compressed" \
	"$(json_get kind "$T/idx.json") $(json_get type "$T/idx.json") $(json_get items "$T/idx.json") $(json_get compressed "$T/idx.json")" \
	"idx u8 256 true"
json_compact "$T/idx.json" >"$T/idx.cjson"
contains "info --json IDX images: dims [256,28,28] (compact)" "$T/idx.cjson" '"dims":[256,28,28]'
check_run "info IDX labels: exit 0" "$LATHE" info "$F/slice-labels-idx1-ubyte.gz"
contains "info IDX labels: u8, dims [256], 256 items" "$T/out" "element type u8, dims [256], 256 items"
if command -v gzip >/dev/null 2>&1; then
	gzip -dc "$F/slice-images-idx3-ubyte.gz" >"$T/plain-idx3-ubyte"
	check_run "info plain IDX: exit 0" "$LATHE" info "$T/plain-idx3-ubyte"
	contains "info plain IDX: not gzip, same dims" "$T/out" "IDX, element type u8, dims [256, 28, 28], 256 items"
	check_run "info --json plain IDX: exit 0" "$LATHE" info --json "$T/plain-idx3-ubyte"
	is "info --json plain IDX: compressed false" "$(json_get compressed "$T/out")" false
else
	skip "info plain IDX" "no gzip"
fi
# Other element types, hand-made: i16 [3], f32 [2,3], f64 [1], i8 [2,1,1]
{ bytes 0 0 11 1  0 0 0 3; bytes 0 1 0 2 255 255; } >"$T/i16.idx"
{ bytes 0 0 13 2  0 0 0 2  0 0 0 3; bytes 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0; } >"$T/f32.idx"
{ bytes 0 0 14 1  0 0 0 1; bytes 63 240 0 0 0 0 0 0; } >"$T/f64.idx"
{ bytes 0 0 9 3  0 0 0 2  0 0 0 1  0 0 0 1; bytes 255 1; } >"$T/i8.idx"
for c in "i16.idx:i16, dims [3]," "f32.idx:f32, dims [2, 3]," \
	"f64.idx:f64, dims [1]," "i8.idx:i8, dims [2, 1, 1],"; do
	file=${c%%:*} want=${c#*:}
	run "$LATHE" info "$T/$file"
	if [ "$rc" -eq 0 ] && grep -F "element type $want" "$T/out" >/dev/null; then
		ok "info IDX $file: element type $want"
	else
		not_ok "info IDX $file: element type $want" "exit status $rc; output:"
		diag_file "$T/out"
		diag_file "$T/err"
	fi
done

finish
