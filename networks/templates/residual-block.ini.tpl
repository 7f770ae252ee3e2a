; A residual block: two 3x3 convolutions and a shortcut (a 1x1 projection when STRIDE != 1
; or the width changes). Parameters: INPUT, NB_FILTERS, STRIDE, PROJECTION (any value: add one).

[{{SECTION_NAME}}_a] conv_def
Input={{INPUT}}
KernelDims=3 3
Padding=1
Stride={{STRIDE}}
NbOutputs={{NB_FILTERS}}
ActivationFunction=Rectifier

[{{SECTION_NAME}}_b] conv_def
Input={{SECTION_NAME}}_a
KernelDims=3 3
Padding=1
NbOutputs={{NB_FILTERS}}
ActivationFunction=Linear

{% if PROJECTION exists %}
[{{SECTION_NAME}}_proj] conv_def
Input={{INPUT}}
KernelDims=1 1
Stride={{STRIDE}}
NbOutputs={{NB_FILTERS}}
ActivationFunction=Linear
{% set INPUT %}{{SECTION_NAME}}_proj{% endset %}
{% endif %}

[{{SECTION_NAME}}_sum]
Input={{SECTION_NAME}}_b,{{INPUT}}
Type=ElemWise
NbOutputs={{NB_FILTERS}}
Operation=Sum
ActivationFunction=Rectifier
