import { useGateValue } from '@statsig/react-bindings';

export function SearchBox() {  // AI suggestions in the search box
  const suggest = useGateValue('web_ai_suggestions');
  return <input className={suggest ? 'search suggest' : 'search'} />;
}
