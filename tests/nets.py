"""INI texts several test modules share (importable: pytest puts tests/ on sys.path)."""

# One pruned Fc cell, Static at 0.4; {extra} is the line of the first extra key (13).
FC_STATIC = """
[sp]
SizeX=4
SizeY=1
NbChannels=1
[fc]
Input=sp
Type=Fc
NbOutputs=5
QWeight=Prune
QWeight.PruningMode=Static
QWeight.Threshold=0.4
{extra}
[fc.Target]
"""

# One Fc cell of 8 inputs pruned by Magnitude to 0.5 (mode: N2D2's default Identity unless
# {extra} says); {extra} is the line of the first extra key (13).
FC8_MAGNITUDE = """
[sp]
SizeX=8
SizeY=1
NbChannels=1
[fc]
Input=sp
Type=Fc
NbOutputs=4
QWeight=Prune
QWeight.PruningFiller=Magnitude
QWeight.Threshold=0.5
{extra}
[fc.Target]
"""

# Conv, BatchNorm, Fc on the embedded digits; Gradual Magnitude 0.3 -> 0.5 -> 0.7 -> 0.9, a
# step at the end of each of the first three epochs.
DIGITS_INPUT = """[database]
Type=Digits_Database
Learn=0.7
Validation=0.1
[sp]
SizeX=8
SizeY=8
NbChannels=1
BatchSize=32"""

BN_DIGITS = """
DefaultModel=Frame
""" + DIGITS_INPUT + """
[conv1]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=8
ActivationFunction=Linear
ConfigSection=cfg
QWeight=Prune
[bn1]
Input=conv1
Type=BatchNorm
NbOutputs=8
ActivationFunction=Rectifier
[fc]
Input=bn1
Type=Fc
NbOutputs=10
ConfigSection=cfg
QWeight=Prune
[softmax]
Input=fc
Type=Softmax
NbOutputs=10
WithLoss=1
[softmax.Target]
[cfg]
Solvers.LearningRate=0.05
QWeight.PruningMode=Gradual
QWeight.PruningFiller=Magnitude
QWeight.StartThreshold=0.3
QWeight.GammaThreshold=0.2
QWeight.Threshold=0.9
"""


# A stem and a residual block: [b] and [stem] summed, then an Fc head. {input}: the [sp]
# section (and what comes before it); {stem}, {a}, {b}: each cell's extra lines;
# {a_outputs}: [a]'s width; {classes}: the head's; {configs}: the config sections.
RESIDUAL_NET = """{input}

[stem]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=8
ActivationFunction=Rectifier
{stem}

[a]
Input=stem
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs={a_outputs}
ActivationFunction=Rectifier
{a}

[b]
Input=a
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=8
ActivationFunction=Linear
{b}

[sum]
Input=b,stem
Type=ElemWise
NbOutputs=8
Operation=Sum
ActivationFunction=Rectifier

[fc]
Input=sum
Type=Fc
NbOutputs={classes}
ActivationFunction=Linear

[softmax]
Input=fc
Type=Softmax
NbOutputs={classes}
WithLoss=1

[softmax.Target]
{configs}"""

_GRADUAL_CHANNEL = """Solvers.LearningRate=0.05
QWeight.PruningMode=Gradual
QWeight.PruningFiller=L1Norm
QWeight.PruningPattern=Channel
"""

# On the embedded digits: the stream (stem and b) Coupled, [a] on its own, both Gradual
# L1Norm Channel 0.1 -> 0.5.
RESIDUAL = RESIDUAL_NET.format(
    input=DIGITS_INPUT, a_outputs=16, classes=10,
    stem="ConfigSection=stream.config\nQWeight=Prune",
    a="ConfigSection=single.config\nQWeight=Prune",
    b="ConfigSection=stream.config\nQWeight=Prune",
    configs="\n[single.config]\n" + _GRADUAL_CHANNEL
            + "QWeight.Threshold=0.5\nQWeight.StartThreshold=0.1\n"
            + "\n[stream.config]\n" + _GRADUAL_CHANNEL
            + "QWeight.PruningScope=Coupled\nQWeight.Threshold=0.5\n"
            + "QWeight.StartThreshold=0.1\n")
