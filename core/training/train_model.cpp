#include "training/train_model.h"

#include <fmt/format.h>

#include "base/error.h"
#include "formats/hf_config.h"
#include "training/decoder_train_model.h"
#include "training/mamba_train_model.h"

namespace archlens::train {

int ParamStore::add(const std::string& name, const Shape& shape, bool decay)
{
    ARCHLENS_ASSERT(!m_index.count(name), "parameter {} added twice", name);
    ParamInfo p;
    p.name = name;
    p.shape = shape;
    p.offset = int64_t(m_values.size());
    p.numel = shapeNumel(shape);
    p.decay = decay;
    m_values.resize(m_values.size() + size_t(p.numel), 0.0f);
    m_params.push_back(p);
    m_index[name] = int(m_params.size()) - 1;
    return int(m_params.size()) - 1;
}

int ParamStore::find(const std::string& name) const
{
    auto it = m_index.find(name);
    return it == m_index.end() ? -1 : it->second;
}

void TrainModel::saveAdapter(const std::filesystem::path& dir, const std::string&,
                             const std::map<std::string, std::string>&) const
{
    throw Error(ErrorCode::Unsupported, fmt::format("LoRA adapters are supported for Mamba only, not {}", architecture()),
                dir.string());
}

std::unique_ptr<TrainModel> loadTrainModel(const std::filesystem::path& dir)
{
    const HfConfig hc = HfConfig::load(dir);
    bool mamba = hc.modelType() == "mamba";
    for (const auto& a : hc.architectures())
        mamba = mamba || a == "MambaForCausalLM";
    if (mamba)
        return std::make_unique<MambaTrainModel>(MambaTrainModel::load(dir));
    return std::make_unique<DecoderTrainModel>(DecoderTrainModel::load(dir));
}

} // namespace archlens::train
