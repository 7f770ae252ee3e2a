; A residual block: two 3x3 convolutions, each followed by BatchNorm, and a shortcut (a 1x1
; projection with its BatchNorm when PROJECTION is given: a stride or a width change).
; The includer defines [conv_def] and [bn_def].
; Parameters: INPUT, NB_FILTERS, STRIDE, PROJECTION (any value: add the projection).

[{{SECTION_NAME}}_a] conv_def
Input={{INPUT}}
KernelDims=3 3
Padding=1
Stride={{STRIDE}}
NbOutputs={{NB_FILTERS}}

[{{SECTION_NAME}}_a_bn] bn_def
Input={{SECTION_NAME}}_a
NbOutputs={{NB_FILTERS}}
ActivationFunction=Rectifier

[{{SECTION_NAME}}_b] conv_def
Input={{SECTION_NAME}}_a_bn
KernelDims=3 3
Padding=1
NbOutputs={{NB_FILTERS}}

[{{SECTION_NAME}}_b_bn] bn_def
Input={{SECTION_NAME}}_b
NbOutputs={{NB_FILTERS}}

{% if PROJECTION exists %}
[{{SECTION_NAME}}_proj] conv_def
Input={{INPUT}}
KernelDims=1 1
Stride={{STRIDE}}
NbOutputs={{NB_FILTERS}}

[{{SECTION_NAME}}_proj_bn] bn_def
Input={{SECTION_NAME}}_proj
NbOutputs={{NB_FILTERS}}
{% set INPUT %}{{SECTION_NAME}}_proj_bn{% endset %}
{% endif %}

[{{SECTION_NAME}}_sum]
Input={{SECTION_NAME}}_b_bn,{{INPUT}}
Type=ElemWise
NbOutputs={{NB_FILTERS}}
Operation=Sum
ActivationFunction=Rectifier
