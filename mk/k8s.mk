# Kubernetes: the image, the manifests (kustomize via the kubectl from PyPI), deploying.
OVERLAY ?= dev
IMAGE ?= bread:dev
KUBECTL := $(BIN)/kubectl
K8S_OUT := build/k8s
# The gateway's Envoy config, one per overlay, is committed, so the manifests render offline and
# reviews see it: the arguments every overlay shares, then the overlay's own (its JWT issuer).
K8S_ENVOY_ARGS = $(shell grep -hv '^\#' k8s/base/gateway/envoy.args k8s/overlays/$(1)/envoy.args)
K8S_OVERLAYS := $(notdir $(patsubst %/,%,$(dir $(wildcard k8s/overlays/*/envoy.args))))

# Render an overlay with IMAGE as the bread image: a throwaway kustomization on top of it, which
# for dev also carries the Secret bread-jwks from the development key (made on first use).
k8s_build = $(PY) -m ops.k8s_build --overlay '$(OVERLAY)' --image '$(IMAGE)' --out $(K8S_OUT)/$(OVERLAY) $(1)

k8s-render: $(INSTALLED) ## render the overlay OVERLAY (dev|prod) with IMAGE into build/k8s/
	@$(call k8s_build)
	$(KUBECTL) kustomize $(K8S_OUT)/$(OVERLAY) > $(K8S_OUT)/$(OVERLAY).yaml
	@echo "wrote $(K8S_OUT)/$(OVERLAY).yaml"

k8s-envoy: $(INSTALLED) ## regenerate each overlay's gateway Envoy config k8s/overlays/*/envoy.yaml
	$(foreach overlay,$(K8S_OVERLAYS),$(PY) -m ops.envoy_config --out k8s/overlays/$(overlay)/envoy.yaml $(call K8S_ENVOY_ARGS,$(overlay)) &&) true

image: ## build the one image of every service as IMAGE (default bread:dev)
	docker build -t $(IMAGE) .

deploy: $(INSTALLED) ## kubectl apply the overlay OVERLAY (dev|prod) with IMAGE to the current context
	@$(call k8s_build,--deploy)
	$(KUBECTL) apply -k $(K8S_OUT)/$(OVERLAY)

.PHONY: k8s-render k8s-envoy image deploy
